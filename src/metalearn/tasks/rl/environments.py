"""Reinforcement-learning task families: environments whose goal or physics vary, one task each.

An :class:`EnvTasks` family samples tasks (a goal, a direction, physics scales, a level seed) as a
:class:`~metalearn.batch.TaskTree` whose task loss is a :class:`PolicyGradientLoss`. Episodes are
collected with the parameters of the moment (before adaptation: the support episodes; after: the
query episodes) by :meth:`EnvTasks.collect`, which steps the environments of *every* task of a
meta-batch at once, the policy's forward batched over all of them (one parameter set, or one per
task through ``torch.func.vmap``). Each task draws its action noise and environment seeds from its
own generator, so a task gives the same episodes alone, in a meta-batch, or in another process.

An environment here is a vector over ``[tasks, episodes]``: ``reset(seeds) -> obs`` and
``step(actions) -> (obs, reward, done)``, all tensors with those two leading dimensions (see
:class:`VectorEnv`); the nav2d family is written as tensor code, the MuJoCo and MiniGrid ones wrap
gymnasium vector environments.
"""
from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch
from torch import Tensor

from ...batch import TaskTree
from ...errors import ConfigError
from ...models.policies import DISTRIBUTIONS, Distribution
from ...protocols import Metric, ParamDict
from .advantages import discounted_returns, gae, linear_baseline, normalize

Forward = Callable[[ParamDict, Tensor], Tensor]
ESTIMATORS = ("lvc", "naive")


class VectorEnv(Protocol):
    """Environments for ``tasks x episodes`` episodes, stepped together."""

    def reset(self, seeds: list[int]) -> Tensor: ...                   # [T, E, obs_dim], one seed per task

    # obs, reward [T, E], done [T, E]. An environment whose step also takes ``live`` ([T, E], false
    # where the episode has ended and its steps are masked) is told, and may leave those unstepped.
    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]: ...


class PolicyGradientLoss:
    """The task loss of reinforcement learning (:class:`~metalearn.protocols.TaskLoss`).

    A task's data is a dict of its episodes (``obs [E, H, obs_dim]``, ``actions``, ``mask``,
    ``logp_old``, ``out_old`` (the policy's outputs when collected), ``adv`` and ``return``: the
    mean undiscounted return). ``loss`` is the importance-weighted surrogate
    ``-mean(exp(log pi(a|s) - log pi_old(a|s)) A)`` over live steps. Its gradient at the sampling
    parameters is the policy gradient; used as the *inner* objective its Hessian also carries the
    term ``grad log pi grad log pi^T A`` that accounts for the support episodes having been sampled
    from the policy being adapted: the low-variance curvature (LVC) estimator of Rothfuss, Lee,
    Clavera, Asfour & Abbeel (2019), "ProMP: Proximal Meta-Policy Search", which on one-step episodes
    equals DiCE (Foerster et al. 2018). ``estimator="naive"`` replaces the ratio by its first-order
    Taylor expansion ``1 + log pi - log pi_old`` in the support data: the same value and gradient,
    without that term (the biased estimator of the original MAML-RL code).
    """

    on_policy = True   # support episodes come from the parameters being adapted (protocols.BatchedCollection)

    def __init__(self, family: EnvTasks, estimator: str = "lvc") -> None:
        if estimator not in ESTIMATORS:
            raise ConfigError(f"unknown estimator {estimator!r}; choose one of: {', '.join(ESTIMATORS)}")
        self.family, self.estimator = family, estimator

    def with_estimator(self, estimator: str) -> PolicyGradientLoss:
        """This task loss with another inner-objective estimator (``"lvc"`` or ``"naive"``)."""
        return self if estimator == self.estimator else PolicyGradientLoss(self.family, estimator)

    @property
    def distribution(self) -> Distribution:
        return self.family.distribution

    def _mark(self, data: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        """Support episodes under the naive estimator: the ratio replaced by its first-order expansion."""
        if self.estimator == "naive":
            for d in data:
                d["first_order_ratio"] = torch.ones(())
        return data

    def support(self, forward: Forward, params: ParamDict, task: dict[str, Tensor],
                generator: torch.Generator | None) -> dict[str, Tensor]:
        tasks = task["task"].unsqueeze(0)
        return self._mark(self.family.collect(forward, params, tasks, [generator], False, self.family.episodes))[0]

    def query(self, forward: Forward, params: ParamDict, task: dict[str, Tensor],
              generator: torch.Generator | None) -> dict[str, Tensor]:
        tasks = task["task"].unsqueeze(0)
        return self.family.collect(forward, params, tasks, [generator], False, self.family.queries)[0]

    # every task's episodes in one vectorised collection (protocols.BatchedCollection)
    def support_batch(self, forward: Forward, params: ParamDict, tree: TaskTree,
                      generators: list[torch.Generator | None], per_task: bool = False) -> list[dict[str, Tensor]]:
        return self._mark(self.family.collect(forward, params, tree.data["task"], generators, per_task,
                                              self.family.episodes))

    def query_batch(self, forward: Forward, params: ParamDict, tree: TaskTree,
                    generators: list[torch.Generator | None], per_task: bool = True) -> list[dict[str, Tensor]]:
        return self.family.collect(forward, params, tree.data["task"], generators, per_task, self.family.queries)

    def log_ratio(self, forward: Forward, params: ParamDict, data: dict[str, Tensor]) -> Tensor:
        return self.distribution.log_prob(forward(params, data["obs"]), data["actions"]) - data["logp_old"]

    def loss(self, forward: Forward, params: ParamDict, data: dict[str, Tensor]) -> Tensor:
        log_ratio = self.log_ratio(forward, params, data)
        ratio = 1 + log_ratio if "first_order_ratio" in data else torch.exp(log_ratio)
        return -(ratio * data["adv"] * data["mask"]).sum() / data["mask"].sum().clamp_min(1)

    def clipped_loss(self, forward: Forward, params: ParamDict, data: dict[str, Tensor], clip: float) -> Tensor:
        """PPO's clipped surrogate (Schulman et al. 2017), ProMP's outer objective."""
        ratio = torch.exp(self.log_ratio(forward, params, data))
        adv = data["adv"]
        obj = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
        return -(obj * data["mask"]).sum() / data["mask"].sum().clamp_min(1)

    def kl(self, forward: Forward, params: ParamDict, data: dict[str, Tensor]) -> Tensor:
        """Mean KL(pi_old || pi_params) over the live states of ``data``."""
        kl = self.distribution.kl(data["out_old"], forward(params, data["obs"]))
        return (kl * data["mask"]).sum() / data["mask"].sum().clamp_min(1)

    def metrics(self, forward: Forward, params: ParamDict, data: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: data[k] for k in self.family.metric_keys}


@dataclass
class EnvSettings:
    """The ``task.*`` keys of every environment family (beside ``shots``: episodes per task before
    adaptation, ``queries``: after): ``horizon`` steps per episode; ``gamma`` and ``gae_lambda``,
    the discount and generalised advantage estimation's lambda (1: Monte-Carlo) of the advantages;
    ``vector``, gymnasium's ``sync`` vector environments or ``async`` worker processes, ``workers``
    of them (0: one per core, shared with torchrun's)."""

    horizon: int = 100
    gamma: float = 0.99
    gae_lambda: float = 1.0
    vector: str = "sync"
    workers: int = 0


class EnvTasks:
    """Base of the environment task families: declarations, task sampling, batched collection.

    A subclass sets ``obs_dim``, ``action_dim``, ``action_space`` (``"continuous"`` or
    ``"discrete"``) and ``task_dim``, and defines :meth:`sample_tasks` and :meth:`make_env`.

    Args:
        episodes: episodes per task collected before adaptation (K, the support set).
        queries: episodes per task after adaptation (None: as many).
        horizon: steps per episode.
        gamma: the discount of the returns.
        gae_lambda: the GAE parameter of the advantages (1: Monte-Carlo returns minus the baseline).
        estimator: ``"lvc"`` or ``"naive"`` (see :class:`PolicyGradientLoss`).
    """

    # declarations (metalearn.protocols.TaskFamily)
    kind = "reinforcement"
    metric = Metric("return", higher_is_better=True, key="return", short="return")
    evaluator = "adaptation"
    pictures: tuple[str, ...] = ("steps",)
    adapt_input = None
    baseline = "policy_pretrain"     # a policy trained on all training tasks, adapted the same way
    settings: type = EnvSettings
    scratch_baseline = True          # evaluate also adapts a randomly initialised policy
    uses_task_loss = True
    surrogate_loss = True            # validation logs the return, not the policy-gradient surrogate
    metric_keys: tuple[str, ...] = ("return",)

    obs_dim = 0
    action_dim = 0
    action_space = "continuous"
    task_dim = 1

    def __init__(self, episodes: int = 20, queries: int | None = None, horizon: int = 100, gamma: float = 0.99,
                 gae_lambda: float = 1.0, estimator: str = "lvc") -> None:
        queries = episodes if queries is None else queries
        for name, value in (("shots", episodes), ("queries", queries), ("horizon", horizon)):
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{type(self).__name__}: task.{name} must be a positive integer, got {value!r}")
        if not 0 < gamma <= 1 or not 0 <= gae_lambda <= 1:
            raise ConfigError(f"task.gamma must be in (0, 1] and task.gae_lambda in [0, 1], got {gamma} and "
                              f"{gae_lambda}")
        self.episodes, self.queries, self.horizon = episodes, queries, horizon
        self.gamma, self.gae_lambda = float(gamma), float(gae_lambda)
        self.task_loss = PolicyGradientLoss(self, estimator)
        self._envs: dict[tuple[int, int], Any] = {}   # reused vector environments, by (tasks, episodes)

    # what a model for it must take and give (models.registry reads these)
    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.obs_dim,)

    @property
    def output_dim(self) -> int:
        return self.action_dim

    @property
    def distribution(self) -> Distribution:
        return DISTRIBUTIONS[self.action_space]

    @classmethod
    def from_config(cls, t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                    cross_domain: bool = False) -> EnvTasks:
        return cls(episodes=shots, queries=queries, horizon=t.horizon if horizon is None else horizon,
                   gamma=t.gamma, gae_lambda=t.gae_lambda)

    # -- what a subclass defines ----------------------------------------------------------------
    def sample_tasks(self, n: int, generator: torch.Generator | None) -> Tensor:
        """``n`` tasks as a ``[n, task_dim]`` tensor (goals, directions, physics scales, seeds)."""
        raise NotImplementedError

    def make_env(self, tasks: Tensor, episodes: int) -> VectorEnv:
        raise NotImplementedError

    def reused_env(self, tasks: Tensor, episodes: int, build: Callable[[int, int], Any]) -> Any:
        """The vector environment for ``tasks x episodes``, made by ``build(tasks, episodes)`` on first
        use and kept (gymnasium environments are slow to make), set to ``tasks`` (``set_tasks``)."""
        key = (tasks.shape[0], episodes)
        if key not in self._envs:
            self._envs[key] = build(*key)
        env = self._envs[key]
        env.set_tasks(tasks)
        return env

    def __del__(self) -> None:
        for env in getattr(self, "_envs", {}).values():
            with contextlib.suppress(Exception):   # closing at interpreter exit may fail; nothing to keep
                env.close()

    def describe_task(self, task: Tensor) -> str:
        return ", ".join(f"{v:.3g}" for v in task.tolist())

    # -- sampling -----------------------------------------------------------------------------------
    def sample(self, num_tasks: int, generator: torch.Generator | None = None) -> TaskTree:
        tasks = self.sample_tasks(num_tasks, generator)
        seeds = torch.randint(2**62, (num_tasks,), generator=generator)
        return TaskTree({"task": tasks}, self.task_loss, seeds=seeds)

    @torch.no_grad()
    def collect(self, forward: Forward, params: ParamDict, tasks: Tensor, generators: list[torch.Generator | None],
                per_task: bool, episodes: int) -> list[dict[str, Tensor]]:
        """``episodes`` episodes of each of ``tasks`` (``[T, task_dim]``) with ``params`` (one set for
        all, or with a leading task dimension when ``per_task``), as one data dict per task."""
        steps = self._rollout(forward, params, tasks, generators, per_task, episodes)
        return self.process(*steps)

    def _rollout(self, forward: Forward, params: ParamDict, tasks: Tensor, generators: list[torch.Generator | None],
                 per_task: bool, episodes: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        dist = self.distribution
        n = tasks.shape[0]
        dtype = next(iter(params.values())).dtype
        env = self.make_env(tasks, episodes)
        seeds = [int(torch.randint(2**31 - 1, (1,), generator=g)) for g in generators]
        obs = env.reset(seeds).to(dtype)
        policy = torch.func.vmap(forward) if per_task else (lambda p, o: forward(p, o))
        alive = torch.ones(n, episodes, dtype=dtype)
        takes_live = "live" in inspect.signature(env.step).parameters
        step: Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]] = (
            (lambda a, live: cast(Any, env).step(a, live=live)) if takes_live else (lambda a, live: env.step(a)))
        rec: dict[str, list[Tensor]] = {"obs": [], "actions": [], "rewards": [], "mask": [], "out": []}
        for _ in range(self.horizon):
            out = policy(params, obs)
            actions = torch.stack([dist.sample(out[t], generators[t]) for t in range(n)])
            nxt, reward, done = step(actions, alive > 0)
            for key, value in (("obs", obs), ("actions", actions), ("rewards", reward.to(dtype) * alive),
                               ("mask", alive), ("out", out)):
                rec[key].append(value)
            alive = alive * (~done).to(dtype)
            obs = nxt.to(dtype)
        extra: dict[str, Tensor] = getattr(env, "episode_info", dict)()
        st = {k: torch.stack(v, dim=2) for k, v in rec.items()}
        return st["obs"], st["actions"], st["rewards"], st["mask"], st["out"], extra

    def process(self, obs: Tensor, actions: Tensor, rewards: Tensor, mask: Tensor, out: Tensor,
                extra: dict[str, Tensor]) -> list[dict[str, Tensor]]:
        """Advantages (linear baseline, GAE, standardised per task) and per-task data dicts."""
        total = rewards.sum(-1).mean(-1)
        # checked before the baseline's least squares, which a non-finite observation would crash
        if not torch.isfinite(total).all() or not torch.isfinite(obs).all() or not torch.isfinite(out).all():
            raise ConfigError(f"{type(self).__name__}: an episode gave a non-finite observation or return (the "
                              f"policy or the simulation diverged); the run's last checkpoint is intact: resume "
                              f"it with a lower algo.inner_lr or algo.max_kl (or train.lr)")
        returns = discounted_returns(rewards, mask, self.gamma)
        values = linear_baseline(obs, returns, mask)
        adv = normalize(gae(rewards, values, mask, self.gamma, self.gae_lambda), mask)
        logp = self.distribution.log_prob(out, actions)
        data = []
        for t in range(obs.shape[0]):
            d = {"obs": obs[t], "actions": actions[t], "mask": mask[t], "logp_old": logp[t], "out_old": out[t],
                 "adv": adv[t], "rewards": rewards[t], "return": total[t]}
            d.update({k: v[t] for k, v in extra.items()})
            data.append(d)
        return data

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(episodes={self.episodes}, queries={self.queries}, horizon={self.horizon}, "
                f"gamma={self.gamma}, gae_lambda={self.gae_lambda})")
