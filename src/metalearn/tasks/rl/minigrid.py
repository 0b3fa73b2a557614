"""Game levels as tasks: MiniGrid (Chevalier-Boisvert et al. 2023, "Minigrid & Miniworld"), extra
``metalearn-torch[minigrid]``.

A task is one seeded layout of a MiniGrid environment (``MiniGrid-DoorKey-6x6-v0``: where the
wall, door, key and goal are; ``MiniGrid-FourRooms-v0``: the gaps between rooms, the start and the
goal): every episode of the task resets to that layout, and a policy adapts to the level from its
own episodes. Layout seeds are disjoint between the splits (``3k``, ``3k + 1``, ``3k + 2`` for
train, validation and test). Observations are the agent's 7 x 7 x 3 symbolic view, flattened and
scaled by 1/10; the 7 discrete actions are MiniGrid's. The metric is the success rate (the share of
episodes that reach the goal); the return is MiniGrid's ``1 - 0.9 steps / max_steps`` on success.
"""
from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from ...errors import ConfigError
from ...protocols import Metric
from .environments import EnvTasks

SPLIT_OFFSET = {"train": 0, "validation": 1, "test": 2}
LAYOUTS = 1_000_000


def minigrid() -> Any:
    """The gymnasium module with MiniGrid's environments registered, and MiniGrid's image wrapper.

    Raises:
        ConfigError: naming the ``minigrid`` extra when MiniGrid is not installed.
    """
    try:
        import gymnasium as gym
        import minigrid  # noqa: F401  (registers the MiniGrid environments)
        from minigrid.wrappers import ImgObsWrapper
    except ImportError:
        raise ConfigError("the MiniGrid task families need minigrid; install it with "
                          "pip install 'metalearn-torch[minigrid]'") from None
    return gym, ImgObsWrapper


class MiniGridVectorEnv:
    """``tasks x episodes`` MiniGrid environments, each episode reset to its task's layout."""

    def __init__(self, env_id: str, num_tasks: int, episodes: int, horizon: int) -> None:
        gym, wrapper = minigrid()
        self.shape = (num_tasks, episodes)
        self.env = gym.vector.SyncVectorEnv(
            [lambda: wrapper(gym.make(env_id, max_episode_steps=horizon))] * (num_tasks * episodes),
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        self.layouts: list[int] = []
        self.success = torch.zeros(self.shape)
        self.ended = torch.zeros(self.shape, dtype=torch.bool)

    def set_tasks(self, tasks: Tensor) -> None:
        self.layouts = [int(s) for s in tasks[:, 0].tolist()]

    def close(self) -> None:
        self.env.close()

    def reset(self, seeds: list[int]) -> Tensor:
        obs, _ = self.env.reset(seed=[s for s in self.layouts for _ in range(self.shape[1])])
        self.success.zero_()
        self.ended.zero_()
        return self._obs(obs)

    def _obs(self, obs: np.ndarray) -> Tensor:
        return torch.as_tensor(obs, dtype=torch.float32).view(*self.shape, -1) / 10.0

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        obs, reward, terminated, truncated, _ = self.env.step(actions.reshape(-1).long().numpy())
        r = torch.as_tensor(reward, dtype=torch.float32).view(self.shape)
        done = torch.as_tensor(np.logical_or(terminated, truncated)).view(self.shape)
        self.success = torch.where(self.ended, self.success, (r > 0).float())
        self.ended |= done
        return self._obs(obs), r, done

    def episode_info(self) -> dict[str, Tensor]:
        return {"success": self.success.mean(1)}


class MiniGridTasks(EnvTasks):
    """Seeded layouts of one MiniGrid environment (see the module docstring)."""

    env_id = "MiniGrid-DoorKey-6x6-v0"
    metric = Metric("success rate", higher_is_better=True, key="success", short="success",
                    bounds=(0.0, 1.0))
    metric_keys = ("return", "success")
    action_space = "discrete"
    task_dim = 1

    def __init__(self, episodes: int = 20, queries: int | None = None, horizon: int = 100, gamma: float = 0.99,
                 gae_lambda: float = 1.0, split: str = "train", estimator: str = "lvc") -> None:
        super().__init__(episodes, queries, horizon, gamma, gae_lambda, estimator)
        gym, wrapper = minigrid()
        probe = wrapper(gym.make(self.env_id))
        self.obs_dim = int(np.prod(probe.observation_space.shape))
        self.action_dim = int(probe.action_space.n)
        probe.close()
        self.offset = SPLIT_OFFSET.get(split, 2)

    @classmethod
    def from_config(cls, t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                    cross_domain: bool = False) -> MiniGridTasks:
        return cls(episodes=shots, queries=queries, horizon=t.horizon if horizon is None else horizon,
                   gamma=t.gamma, gae_lambda=t.gae_lambda, split=split)

    def sample_tasks(self, n: int, generator: torch.Generator | None) -> Tensor:
        k = torch.randint(LAYOUTS, (n, 1), generator=generator, dtype=torch.int64)
        return (3 * k + self.offset).double()

    def make_env(self, tasks: Tensor, episodes: int) -> MiniGridVectorEnv:
        return cast(MiniGridVectorEnv, self.reused_env(
            tasks, episodes, lambda t, e: MiniGridVectorEnv(self.env_id, t, e, self.horizon)))

    def describe_task(self, task: Tensor) -> str:
        return f"layout {int(task[0])}"


class FourRoomsTasks(MiniGridTasks):
    """MiniGrid FourRooms: each task is one seeded layout of the four rooms (walls, doors, goal); the
    policy adapts to a new layout from a few episodes.

    References:
        Chevalier-Boisvert et al. (2023), "Minigrid & Miniworld", NeurIPS Datasets and Benchmarks.
    """
    env_id = "MiniGrid-FourRooms-v0"
