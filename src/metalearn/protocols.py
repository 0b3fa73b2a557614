"""The protocols that every kind of task implements, at the bottom of the import graph (this module
imports nothing from metalearn).

A **task family** (:class:`TaskFamily`) is a seeded distribution of tasks: sine waves, few-shot
episodes of images, optimisation problems, environments whose goal or physics vary, groups of table
rows. It samples meta-batches and *declares* what the rest of the library needs to know about it:
what kind of task it is, how it is scored, what the report draws, what ``metalearn adapt``
accepts and which evaluation ``metalearn evaluate`` runs. The trainer, evaluation, reports,
comparisons and the CLI dispatch on these declarations, never on a family's name.

A **task loss** (:class:`TaskLoss`) says how one task's losses are formed from parameters: the
contract of the inner loop. Supervised ``(x, y)`` pairs are one implementation
(``SupervisedLoss``, whose tasks a ``TaskBatch`` stacks for the fast paths); a masked, weighted
loss over ragged groups of rows is another; a policy-gradient surrogate over episodes that are
*collected with the current parameters* (``support`` with theta before adaptation, ``query`` with
the adapted theta', outside autograd) is a third. The functional core adapts parameters against
it without knowing which (``metalearn.functional.contract``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

ParamDict = dict[str, Tensor]
Forward = Callable[[ParamDict, Any], Any]

TaskKind = Literal["regression", "classification", "optimizer", "reinforcement"]
TASK_KINDS: tuple[str, ...] = ("regression", "classification", "optimizer", "reinforcement")


@dataclass(frozen=True)
class Metric:
    """How a family's tasks are scored after adaptation.

    ``fn(outputs, targets)`` gives one task's value from the model's query outputs (None: the task
    loss itself); ``key`` names an entry of :meth:`TaskLoss.metrics` instead, for families whose
    score is not a function of outputs and targets (an episode's return). Reports print the value
    times ``scale`` under ``name``; logs keep the unscaled value as ``val_<short>``. ``bounds``, when
    known, are the values a task's score can take (a confidence band is drawn within them).
    """

    name: str
    higher_is_better: bool
    fn: Callable[[Tensor, Tensor], Tensor] | None = None
    key: str | None = None
    short: str = "loss"
    scale: float = 1.0
    bounds: tuple[float, float] | None = None   # the values it can take (before ``scale``), e.g. (0, 1)

    @property
    def is_loss(self) -> bool:
        return self.fn is None and self.key is None


@runtime_checkable
class TaskFamily(Protocol):
    """A seeded distribution of tasks, and what it declares about them.

    Declarations (class or instance attributes):
        kind: one of :data:`TASK_KINDS`; algorithms say which kinds they accept.
        metric: how a task is scored after adaptation (:class:`Metric`).
        evaluator: the name of the registered evaluator that ``metalearn evaluate`` runs
            (:mod:`metalearn.evaluation.registry`: ``adaptation``, the metric before and after inner
            steps with CIs; ``groups``, per held-out group against pooled and per-group baselines;
            ``optimizers``, a learned optimizer against tuned hand-designed ones).
        pictures: what ``metalearn report`` draws beside the training curve, by name.
        adapt_input: the name of the registered adapter for what ``metalearn adapt`` accepts
            (:mod:`metalearn.evaluation.adapters`: ``image_folders``, ``table_rows``), or None when
            adaptation is through the Python API only.
        baseline: the algorithm that ``evaluate`` trains as this family's transfer baseline, or None.
        uses_task_loss: (optional, default False) its batches are ``TaskTree`` s that carry their
            own :class:`TaskLoss`, rather than supervised ``TaskBatch`` es.
        surrogate_loss: (optional, default False) its loss is a surrogate whose value says nothing
            about a task (a policy-gradient objective, about zero at the parameters that collected
            the episodes): validation logs its metric only, and reports draw that metric instead.
    """

    kind: str
    metric: Metric
    evaluator: str
    pictures: tuple[str, ...]
    adapt_input: str | None
    baseline: str | None

    def sample(self, num_tasks: int, generator: torch.Generator | None = None) -> Any:
        """``num_tasks`` tasks as one batch with a leading task dimension."""
        ...


@runtime_checkable
class ShapedFamily(TaskFamily, Protocol):
    """A family whose model's input and output shapes it fixes (what a model builder reads)."""

    input_shape: tuple[int, ...]
    output_dim: int


@runtime_checkable
class SupervisedFamily(ShapedFamily, Protocol):
    """A family of ``(x, y)`` tasks: what a model for it must take and give."""

    loss: str   # "mse" or "cross_entropy"


@runtime_checkable
class OptimizeeFamily(TaskFamily, Protocol):
    """A family of optimisation problems for a learned optimizer (Andrychowicz et al., 2016):
    ``losses`` of a batch of problems at step ``t`` of a run of ``horizon`` steps, meta-trained by
    truncated back-propagation through ``unroll`` steps; ``final_loss`` scores a run's end."""

    horizon: int
    unroll: int

    def losses(self, params: ParamDict, data: dict[str, Tensor], t: int = 0) -> Tensor: ...

    def final_loss(self, params: ParamDict, data: dict[str, Tensor]) -> Tensor: ...


@runtime_checkable
class EnvironmentFamily(ShapedFamily, Protocol):
    """A family of environments whose goal or physics vary (meta-reinforcement learning): tasks
    are ``[task_dim]`` descriptions, ``collect`` runs ``episodes`` episodes of each task with
    given policy parameters (one set for all tasks, or one per task when ``per_task``), outside
    autograd; ``task_loss`` is the policy-gradient :class:`TaskLoss` over them, ``distribution``
    the policy's action distribution, ``metric_keys`` the per-task numbers an episode gives."""

    episodes: int
    queries: int
    horizon: int
    metric_keys: tuple[str, ...]
    task_loss: Any

    @property
    def distribution(self) -> Any: ...

    def sample_tasks(self, n: int, generator: torch.Generator | None) -> Tensor: ...

    def make_env(self, tasks: Tensor, episodes: int) -> Any: ...

    def collect(self, forward: Forward, params: ParamDict, tasks: Tensor,
                generators: list[torch.Generator | None], per_task: bool, episodes: int) -> list[dict[str, Tensor]]: ...

    def describe_task(self, task: Tensor) -> str: ...


@runtime_checkable
class TaskLoss(Protocol):
    """How a task's losses are formed from parameters: the inner loop's contract.

    ``task`` is one task's slice of a batch (a pytree of tensors without the task dimension).
    ``support`` and ``query`` return the data that the inner loop adapts on and that the adapted
    parameters are scored on; a family whose data depends on the parameters (reinforcement
    learning: episodes are collected with them) collects it there, outside autograd, with
    ``generator``. ``loss`` is differentiable in ``params``. ``metrics`` gives per-task numbers
    beside the loss (an episode's return, an accuracy), without gradients.
    """

    def support(self, forward: Forward, params: ParamDict, task: Any,
                generator: torch.Generator | None) -> Any: ...

    def query(self, forward: Forward, params: ParamDict, task: Any,
              generator: torch.Generator | None) -> Any: ...

    def loss(self, forward: Forward, params: ParamDict, data: Any) -> Tensor: ...

    def metrics(self, forward: Forward, params: ParamDict, data: Any) -> dict[str, Tensor]: ...


@runtime_checkable
class BatchedCollection(Protocol):
    """A task loss that collects the data of all the tasks of a meta-batch in one call (one
    vectorised environment for every task's episodes), the capability the functional core uses in
    place of per-task ``support``/``query`` calls. ``params`` is one set for all tasks, or one per
    task with a leading task dimension when ``per_task``; ``generators`` holds one per task, drawn
    in the same order as the per-task calls would (support, then query). It returns one data item
    per task. A task loss whose support data must come from the parameters being adapted (on-policy
    episodes) also declares ``on_policy = True``: an adaptation curve then collects fresh support
    data before each step and scores the parameters on it."""

    def support_batch(self, forward: Forward, params: ParamDict, tree: Any, generators: list[torch.Generator | None],
                      per_task: bool = False) -> list[Any]: ...

    def query_batch(self, forward: Forward, params: ParamDict, tree: Any, generators: list[torch.Generator | None],
                    per_task: bool = True) -> list[Any]: ...


@runtime_checkable
class Result(Protocol):
    """What every evaluation returns (adaptation curves, grouped tables, learned optimizers,
    federated clients): a Markdown ``table()``, a JSON-able ``to_dict()``, and the ``path`` it was
    saved at (None before it is saved)."""

    path: Path | None

    def table(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def declared(family: Any, name: str, default: Any = None) -> Any:
    """A family's declaration ``name``, or ``default`` for a plain object with only ``sample``."""
    return getattr(family, name, default)
