"""2D point navigation, the reinforcement-learning task family of Finn, Abbeel & Levine (2017),
"Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", section 5.3.

A point starts at the origin and moves by its action, clipped to [-0.1, 0.1] per coordinate;
the reward is minus the distance to the task's goal (uniform in [-0.5, 0.5]^2), and an episode
ends within 0.01 of the goal in both coordinates, or after ``horizon`` (100) steps. Written as
tensor code: every episode of every task steps in one call, no gym needed.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ...errors import ConfigError
from .environments import EnvTasks


class Nav2dEnv:
    """``tasks x episodes`` point robots (see the module docstring)."""

    def __init__(self, goals: Tensor, episodes: int) -> None:
        self.goals = goals.unsqueeze(1).expand(goals.shape[0], episodes, 2)
        self.pos = torch.zeros_like(self.goals)

    def reset(self, seeds: list[int]) -> Tensor:
        self.pos = torch.zeros_like(self.goals)
        return self.pos.clone()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        self.pos = self.pos + actions.to(self.pos.dtype).clamp(-0.1, 0.1)
        diff = self.pos - self.goals
        reward = -diff.norm(dim=-1)
        done = (diff.abs() < 0.01).all(-1)
        return self.pos.clone(), reward, done


class Nav2dTasks(EnvTasks):
    """Goals uniform in ``[low, high]^2`` (default ``[-0.5, 0.5]``)."""

    obs_dim = 2
    action_dim = 2
    action_space = "continuous"
    task_dim = 2
    pictures = ("steps", "paths")

    def __init__(self, episodes: int = 20, queries: int | None = None, horizon: int = 100, gamma: float = 0.99,
                 gae_lambda: float = 1.0, goal_range: tuple[float, float] = (-0.5, 0.5),
                 estimator: str = "lvc") -> None:
        super().__init__(episodes, queries, horizon, gamma, gae_lambda, estimator)
        lo, hi = goal_range
        if not lo < hi:
            raise ConfigError(f"nav2d: the goal range must be [low, high] with low < high, got {[lo, hi]}")
        self.goal_range = (float(lo), float(hi))

    def sample_tasks(self, n: int, generator: torch.Generator | None) -> Tensor:
        lo, hi = self.goal_range
        return torch.rand(n, 2, generator=generator) * (hi - lo) + lo

    def make_env(self, tasks: Tensor, episodes: int) -> Nav2dEnv:
        return Nav2dEnv(tasks, episodes)

    def describe_task(self, task: Tensor) -> str:
        return f"goal ({task[0]:+.2f}, {task[1]:+.2f})"
