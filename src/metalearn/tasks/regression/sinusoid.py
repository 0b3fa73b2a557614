"""The sinusoid regression task family of Finn, Abbeel & Levine (2017), "Model-Agnostic
Meta-Learning for Fast Adaptation of Deep Networks", section 5.1.

Each task is ``y = A sin(x - phase)`` with ``A ~ U[0.1, 5]``, ``phase ~ U[0, pi]``, and inputs
``x ~ U[-5, 5]``; K support and K query points are drawn independently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor

from ...batch import TaskBatch
from ...errors import ConfigError
from ...protocols import Metric


@dataclass(frozen=True)
class SinusoidTask:
    """The ground truth of sampled tasks, for plotting the true curves."""

    amplitude: Tensor
    phase: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        return self.amplitude.view(-1, 1, 1) * torch.sin(x - self.phase.view(-1, 1, 1))


@dataclass
class SinusoidSettings:
    """The sinusoid family's ``task.*`` keys (beside ``shots`` and ``queries``: points per task):
    the ranges ``[low, high]`` that each task's amplitude and phase and every input are drawn from."""

    amplitude: list[float] = field(default_factory=lambda: [0.1, 5.0])
    phase: list[float] = field(default_factory=lambda: [0.0, 3.141592653589793])
    x_range: list[float] = field(default_factory=lambda: [-5.0, 5.0])


class SinusoidTasks:
    """A distribution over sine-wave regression tasks; ``sample`` draws a stacked ``TaskBatch``."""

    input_shape = (1,)
    output_dim = 1
    loss = "mse"
    # declarations (metalearn.protocols.TaskFamily)
    kind = "regression"
    metric = Metric("mse", higher_is_better=False)
    evaluator = "adaptation"
    pictures = ("functions", "steps")
    adapt_input = None
    baseline = "pretrain"
    settings = SinusoidSettings

    def __init__(self, shots: int = 10, queries: int | None = None,
                 amplitude: tuple[float, float] = (0.1, 5.0),
                 phase: tuple[float, float] = (0.0, math.pi),
                 x_range: tuple[float, float] = (-5.0, 5.0)) -> None:
        queries = shots if queries is None else queries
        for name, value in (("shots", shots), ("queries", queries)):
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"sinusoid: {name} must be a positive integer, got {value!r}; "
                                  f"use e.g. --set task.{name}=10")
        for name, (lo, hi) in (("amplitude", amplitude), ("phase", phase), ("x_range", x_range)):
            if not lo <= hi:
                raise ConfigError(f"sinusoid: {name} range must be [low, high] with low <= high, got {[lo, hi]}")
        self.shots, self.queries = shots, queries
        # pairs (each unpacked into lo, hi above), as tuples also when the config gave lists
        self.amplitude = cast("tuple[float, float]", tuple(amplitude))
        self.phase = cast("tuple[float, float]", tuple(phase))
        self.x_range = cast("tuple[float, float]", tuple(x_range))

    @classmethod
    def from_config(cls, t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                    cross_domain: bool = False) -> SinusoidTasks:
        """The family that a config's ``task`` section describes (every split is the same
        distribution; the splits differ by their seeded streams)."""
        for name in ("amplitude", "phase", "x_range"):
            if len(getattr(t, name)) != 2:
                raise ConfigError(f"task.{name} must be [low, high], got {getattr(t, name)}")
        return cls(shots=shots, queries=queries, amplitude=tuple(t.amplitude), phase=tuple(t.phase),
                   x_range=tuple(t.x_range))

    def _uniform(self, shape: tuple[int, ...], bounds: tuple[float, float], gen: torch.Generator | None) -> Tensor:
        lo, hi = bounds
        return torch.rand(shape, generator=gen) * (hi - lo) + lo

    def sample_with_truth(self, num_tasks: int, generator: torch.Generator | None = None
                          ) -> tuple[TaskBatch, SinusoidTask]:
        """Draw ``num_tasks`` tasks; also return their amplitudes and phases."""
        amp = self._uniform((num_tasks,), self.amplitude, generator)
        phase = self._uniform((num_tasks,), self.phase, generator)
        truth = SinusoidTask(amp, phase)
        xs = self._uniform((num_tasks, self.shots, 1), self.x_range, generator)
        xq = self._uniform((num_tasks, self.queries, 1), self.x_range, generator)
        return TaskBatch(xs, truth(xs), xq, truth(xq)), truth

    def sample(self, num_tasks: int, generator: torch.Generator | None = None) -> TaskBatch:
        """Draw ``num_tasks`` tasks as one ``TaskBatch`` (support and query of shape ``[T, K, 1]``)."""
        return self.sample_with_truth(num_tasks, generator)[0]

    def __repr__(self) -> str:
        return (f"SinusoidTasks(shots={self.shots}, queries={self.queries}, amplitude={self.amplitude}, "
                f"phase={self.phase}, x_range={self.x_range})")
