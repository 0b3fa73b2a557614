"""The contract of an evaluator: what ``metalearn evaluate`` (and :func:`~metalearn.evaluation.registry.evaluate_run`)
runs for a task family, by the name the family declares (``evaluator``).

An evaluator scores a run on held-out tasks and saves the result under ``RUN/eval/``; it can load
that result again (for ``metalearn report``) and says which metric the run's training curve shows.
Every result implements :class:`metalearn.protocols.Result`. Adding a kind of evaluation is one
module with a class of this shape plus one line in :mod:`metalearn.evaluation.registry`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..config import Config
from ..protocols import Metric, Result
from ..runs import Run


@dataclass(frozen=True)
class EvalRequest:
    """What the caller of ``evaluate`` asked for; None everywhere means the run's own settings.

    shots: support examples per class (or per task / group); tasks: held-out tasks, episodes or
    problems; steps: inner steps to report; baseline: also train and score the family's baseline;
    dataset: another family of the same kind to test on; queries: query examples per class;
    data_dir: a local copy of the test data; checkpoint: ``best``, ``last`` or a kept ``step-N``;
    device: where to adapt; episodes: how test episodes draw their classes.
    """

    shots: int | None = None
    tasks: int | None = None
    steps: list[int] | None = None
    baseline: bool = True
    progress: bool = True
    dataset: str | None = None
    queries: int | None = None
    data_dir: str | None = None
    checkpoint: str = "best"
    device: str = "cpu"
    episodes: str | None = None


@runtime_checkable
class Evaluator(Protocol):
    """One kind of evaluation, registered by ``name``."""

    name: str

    def evaluate(self, run: Run, cfg: Config, request: EvalRequest) -> Result:
        """Score the run on held-out tasks and save the result in ``RUN/eval/``."""
        ...

    def load(self, run: Run, cfg: Config) -> Result | None:
        """The saved result of the run's default evaluation, or None when there is none yet."""
        ...

    def curve_metric(self, cfg: Config) -> Metric:
        """The metric the run's validation curve is in (for the report's training picture)."""
        ...
