"""Robot-control task families on gymnasium's MuJoCo environments (extra ``metalearn-torch[rl]``).

Goals vary (Finn, Abbeel & Levine 2017, section 5.3; the reward is computed here from the
environment's ``info``, with a control cost of 0.05 |a|^2 for the cheetah):

* ``halfcheetah-vel``: target velocity v* ~ U[0, 2]; reward -|v - v*| - 0.05 |a|^2;
* ``halfcheetah-dir``: forward or backward (two tasks); reward d v - 0.05 |a|^2;
* ``ant-dir``: forward or backward along x; reward d v_x - 0.005 |a|^2 - contact cost + 0.05 while
  alive: the ant terms of rllab's ``AntEnv``, which MAML's and ProMP's ant tasks use (Ant-v5's own
  weights are 100 times the control cost and 20 times the survival bonus: with them a policy that
  stands still and survives outscores any gait learned in a short budget);
* ``ant-goal``: a goal uniform in the disk of radius 3; reward minus the distance of the torso to
  it plus the same terms.

Physics vary (robot control under changed dynamics), following the rand_param_envs protocol of
ProMP and PEARL: body masses, body inertias and geom friction scaled per task by 1.5^U[-3, 3], joint
damping by 1.3^U[-3, 3], the environment's own reward: ``hopper-params`` (Hopper-v5) and
``halfcheetah-params`` (HalfCheetah-v5). The scales are written into the MuJoCo model of each
sub-environment before its episodes and the defaults restored from a copy, so the cached vector
environment serves every task.

Environments are gymnasium vector environments of ``tasks x episodes`` sub-environments
(synchronous; ``task.vector=async`` shards them over ``task.workers`` processes, one per core by
default, see :mod:`~metalearn.tasks.rl.env_workers`) with an explicit ``max_episode_steps``
and same-step autoreset, so no action is dropped after a termination; steps after an episode's
end are masked.
"""
from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from ...errors import ConfigError
from .env_workers import ShardedVectorEnv, check_workers, step_live
from .environments import EnvTasks
from .mujoco_sim import PHYSICS, apply_physics, gymnasium

VECTOR_MODES = ("sync", "async")


class GymVectorEnv:
    """A gymnasium vector environment seen as ``[tasks, episodes]`` (see
    :class:`~metalearn.tasks.rl.environments.VectorEnv`), with the family's task reward: one
    synchronous vector environment, or (``task.vector=async``) the sub-environments sharded over
    worker processes (:class:`~metalearn.tasks.rl.env_workers.ShardedVectorEnv`)."""

    def __init__(self, family: MujocoTasks, num_tasks: int, episodes: int) -> None:
        gym = gymnasium()
        self.family, self.shape = family, (num_tasks, episodes)
        n = num_tasks * episodes
        self.env: Any
        if family.vector == "async":
            self.env = ShardedVectorEnv(family.env_id, n, family.horizon, family.env_kwargs, family.workers)
        else:
            kwargs = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
            try:
                self.env = gym.make_vec(family.env_id, num_envs=n, vectorization_mode="sync",
                                        vector_kwargs=kwargs, max_episode_steps=family.horizon, **family.env_kwargs)
            except gym.error.Error as exc:
                raise ConfigError(f"cannot make the environment {family.env_id!r}: {exc}") from None
        self.low, self.high = (torch.as_tensor(family.action_low, dtype=torch.float64),
                               torch.as_tensor(family.action_high, dtype=torch.float64))
        self.tasks: Tensor | None = None
        self.obs = np.zeros(0)   # the last observations, kept for sub-environments left unstepped

    def set_tasks(self, tasks: Tensor) -> None:
        self.tasks = tasks
        if self.family.varies_physics:
            scales = tasks.repeat_interleave(self.shape[1], dim=0).double().numpy()
            if isinstance(self.env, ShardedVectorEnv):
                self.env.set_physics(scales)
            else:
                for env, s in zip(self.env.envs, scales):
                    apply_physics(env.unwrapped.model, s)

    def reset(self, seeds: list[int]) -> Tensor:
        e = self.shape[1]
        per_env = [int(s) * 1000 + i for s in seeds for i in range(e)]
        self.obs, _ = self.env.reset(seed=per_env)
        return torch.as_tensor(self.obs).view(*self.shape, -1)

    def step(self, actions: Tensor, live: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """A step of every sub-environment, or (``live``) only of those whose episode goes on."""
        a = torch.maximum(torch.minimum(actions.double(), self.high), self.low).reshape(-1, actions.shape[-1])
        keep = None if live is None else live.reshape(-1).numpy()
        if keep is not None and not keep.any():   # every episode has ended: nothing to step or reward
            done = torch.ones(self.shape, dtype=torch.bool)
            return torch.as_tensor(self.obs).view(*self.shape, -1), torch.zeros(self.shape, dtype=torch.float64), done
        if isinstance(self.env, ShardedVectorEnv):
            obs, reward, terminated, truncated, info = self.env.step(a.numpy(), keep)
        else:
            obs, reward, terminated, truncated, info = step_live(self.env, a.numpy(), keep, self.obs)
        self.obs = obs
        task = self.tasks.repeat_interleave(self.shape[1], dim=0) if self.tasks is not None else None
        r = self.family.task_reward(torch.as_tensor(reward), info, a, task)
        done = torch.as_tensor(np.logical_or(terminated, truncated))
        return (torch.as_tensor(obs).view(*self.shape, -1), r.view(self.shape), done.view(self.shape))

    def close(self) -> None:
        self.env.close()


class MujocoTasks(EnvTasks):
    """Base of the MuJoCo families: the environment, the task distribution and the task reward."""

    env_id = ""
    varies_physics = False
    # the goal families observe the torso's position, as MAML's environments do (rllab's and
    # pytorch-maml-rl's cheetah and ant append the torso's centre of mass; gymnasium's v5 drops x and y
    # by default): the ant needs it to find a goal, and the cheetah reaches a direction faster with it
    observe_position = False
    ctrl_cost = 0.05
    pictures: tuple[str, ...] = ("steps", "clip")

    def __init__(self, episodes: int = 20, queries: int | None = None, horizon: int = 200, gamma: float = 0.99,
                 gae_lambda: float = 1.0, vector: str = "sync", estimator: str = "lvc", balanced: bool = False,
                 workers: int = 0) -> None:
        super().__init__(episodes, queries, horizon, gamma, gae_lambda, estimator)
        self.balanced = balanced   # a finite task set: validation and test cycle through every task
        if vector not in VECTOR_MODES:
            raise ConfigError(f"unknown task.vector {vector!r}; choose one of: {', '.join(VECTOR_MODES)}")
        self.vector, self.workers = vector, check_workers(workers)
        gym = gymnasium()
        probe = gym.make(self.env_id, **self.env_kwargs)
        self.obs_dim = int(np.prod(probe.observation_space.shape))
        self.action_dim = int(np.prod(probe.action_space.shape))
        self.action_low, self.action_high = probe.action_space.low, probe.action_space.high
        if self.varies_physics:
            m = probe.unwrapped.model
            self.physics_sizes = [getattr(m, k).shape[0] for k in PHYSICS]
            self.task_dim = sum(self.physics_sizes)
        probe.close()

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {"exclude_current_positions_from_observation": False} if self.observe_position else {}

    @classmethod
    def from_config(cls, t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                    cross_domain: bool = False) -> MujocoTasks:
        return cls(episodes=shots, queries=queries, horizon=t.horizon if horizon is None else horizon,
                   gamma=t.gamma, gae_lambda=t.gae_lambda, vector=t.vector, balanced=split != "train",
                   workers=t.workers)

    def make_env(self, tasks: Tensor, episodes: int) -> GymVectorEnv:
        return cast(GymVectorEnv, self.reused_env(tasks, episodes, lambda t, e: GymVectorEnv(self, t, e)))

    def task_reward(self, reward: Tensor, info: dict[str, Any], actions: Tensor, task: Tensor | None) -> Tensor:
        """The reward of each sub-environment for its task (default: the environment's own)."""
        return reward

    def render_episode(self, policy: Any, task: Tensor, steps: int | None = None, size: tuple[int, int] = (240, 180),
                       seed: int = 0) -> list[np.ndarray]:
        """RGB frames of one episode of ``policy`` (obs -> action) on ``task``, rendered offscreen;
        a ConfigError saying what to install where offscreen rendering is not available."""
        gym = gymnasium()
        try:
            env = gym.make(self.env_id, render_mode="rgb_array", width=size[0], height=size[1], **self.env_kwargs)
            if self.varies_physics:
                apply_physics(env.unwrapped.model, task.double().numpy())
            obs, _ = env.reset(seed=seed)
            frames = [env.render()]
            for _ in range(steps or self.horizon):
                action = policy(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))[0]
                obs, _, terminated, truncated, _ = env.step(action.double().clamp(-1, 1).numpy())
                frames.append(env.render())
                if terminated or truncated:
                    break
            env.close()
        except Exception as exc:
            raise ConfigError(f"offscreen rendering is not available here ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); install EGL or OSMesa (apt install "
                              f"libegl1 or libosmesa6) and set MUJOCO_GL=egl or osmesa") from None
        return [f for f in frames if f is not None]


def _info(info: dict[str, np.ndarray], key: str) -> Tensor:
    """``info[key]`` of every sub-environment for the step just taken (``info`` made dense by
    :func:`~metalearn.tasks.rl.env_workers.dense_info`)."""
    if key not in info:
        raise ConfigError(f"the environment's info has no {key!r} (it has {', '.join(sorted(info))}); this task "
                          f"family needs a gymnasium MuJoCo v5 environment")
    return torch.as_tensor(info[key])


class HalfCheetahVel(MujocoTasks):
    """Target velocity uniform in [0, 2]."""

    env_id = "HalfCheetah-v5"
    observe_position = True
    task_dim = 1

    def sample_tasks(self, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.rand(n, 1, generator=generator, dtype=torch.float64) * 2.0

    def task_reward(self, reward: Tensor, info: dict[str, Any], actions: Tensor, task: Tensor | None) -> Tensor:
        assert task is not None
        return -(_info(info, "x_velocity") - task[:, 0]).abs() - self.ctrl_cost * actions.pow(2).sum(-1)

    def describe_task(self, task: Tensor) -> str:
        return f"velocity {float(task[0]):.2f}"


class HalfCheetahDir(MujocoTasks):
    """Run forward (+1) or backward (-1): two tasks, each drawn with probability 1/2."""

    env_id = "HalfCheetah-v5"
    observe_position = True
    task_dim = 1
    finite_tasks = (1.0, -1.0)

    def sample_tasks(self, n: int, generator: torch.Generator | None) -> Tensor:
        if self.balanced:   # held-out tasks: each direction equally often
            return torch.tensor(self.finite_tasks, dtype=torch.float64).repeat(n // 2 + 1)[:n].unsqueeze(1)
        return (torch.randint(2, (n, 1), generator=generator) * 2 - 1).double()

    def task_reward(self, reward: Tensor, info: dict[str, Any], actions: Tensor, task: Tensor | None) -> Tensor:
        assert task is not None
        return task[:, 0] * _info(info, "x_velocity") - self.ctrl_cost * actions.pow(2).sum(-1)

    def describe_task(self, task: Tensor) -> str:
        return "forward" if float(task[0]) > 0 else "backward"


ANT_CTRL_COST = 0.005   # rllab's AntEnv: 0.5 * 1e-2 |a|^2 (Ant-v5: 0.5 |a|^2)
ANT_SURVIVE = 0.05      # rllab's AntEnv, per step alive (Ant-v5: 1.0)


def ant_terms(info: dict[str, Any], actions: Tensor, ctrl_cost: float) -> Tensor:
    """The ant's reward besides its task term, with rllab's weights: minus ``ctrl_cost`` |a|^2 (the
    ant families' 0.005), minus Ant-v5's contact cost (5e-4 |clip(cfrc_ext, -1, 1)|^2, rllab's weight),
    plus 0.05 while healthy."""
    alive = (_info(info, "reward_survive") > 0).double()
    return -ctrl_cost * actions.pow(2).sum(-1) + _info(info, "reward_contact") + ANT_SURVIVE * alive


class AntDir(HalfCheetahDir):
    """The ant runs forward or backward along x (rllab's ant terms, see :func:`ant_terms`)."""

    env_id = "Ant-v5"
    ctrl_cost = ANT_CTRL_COST

    def task_reward(self, reward: Tensor, info: dict[str, Any], actions: Tensor, task: Tensor | None) -> Tensor:
        assert task is not None
        return task[:, 0] * _info(info, "x_velocity") + ant_terms(info, actions, self.ctrl_cost)


class AntGoal(MujocoTasks):
    """Reach a goal uniform in the disk of radius 3."""

    env_id = "Ant-v5"
    observe_position = True
    ctrl_cost = ANT_CTRL_COST
    task_dim = 2

    def sample_tasks(self, n: int, generator: torch.Generator | None) -> Tensor:
        r = 3.0 * torch.rand(n, generator=generator, dtype=torch.float64).sqrt()
        a = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        return torch.stack([r * a.cos(), r * a.sin()], dim=1)

    def task_reward(self, reward: Tensor, info: dict[str, Any], actions: Tensor, task: Tensor | None) -> Tensor:
        assert task is not None
        xy = torch.stack([_info(info, "x_position"), _info(info, "y_position")], dim=1)
        return -(xy - task).norm(dim=1) + ant_terms(info, actions, self.ctrl_cost)

    def describe_task(self, task: Tensor) -> str:
        return f"goal ({float(task[0]):+.1f}, {float(task[1]):+.1f})"


class PhysicsTasks(MujocoTasks):
    """Dynamics vary: log-scales of masses, inertias, frictions (base 1.5) and damping (base 1.3),
    uniform in [-3, 3]; the reward is the environment's own."""

    varies_physics = True

    def sample_tasks(self, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.rand(n, self.task_dim, generator=generator, dtype=torch.float64) * 6 - 3

    def describe_task(self, task: Tensor) -> str:
        m = self.physics_sizes[0]
        return f"mass x{float(np.exp(np.log(1.5) * task[:m].double().mean())):.2f} (geometric mean)"


class HopperParams(PhysicsTasks):
    """Hopper (MuJoCo, gymnasium v5) whose body masses, inertias, damping and friction are scaled per task
    (log-uniform, see :class:`PhysicsTasks`), as in ProMP's "rand params" benchmarks.

    References:
        Rothfuss, Lee, Clavera, Asfour and Abbeel (2019), "ProMP: Proximal Meta-Policy Search", ICLR.
    """
    env_id = "Hopper-v5"


class HalfCheetahParams(PhysicsTasks):
    """HalfCheetah (MuJoCo, gymnasium v5) with per-task scaled physical parameters (masses, inertias,
    damping, friction), as for :class:`HopperParams`.

    References:
        Rothfuss, Lee, Clavera, Asfour and Abbeel (2019), "ProMP: Proximal Meta-Policy Search", ICLR.
    """
    env_id = "HalfCheetah-v5"
