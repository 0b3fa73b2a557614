"""One inner-loop contract for every kind of task: ``meta_loss``, ``meta_backward`` and
``adaptation_curve`` take either kind of meta-batch and choose the path once, here, by what the
batch can do:

* a :class:`~metalearn.batch.TaskBatch` (supervised ``(x, y)`` tasks, whose task loss is
  :class:`~metalearn.batch.SupervisedLoss`) takes the fast paths of :mod:`.inner_loop`: ``vmap``
  over tasks, the test-time safeguard, a per-step parameter hook (MAML++);
* a :class:`~metalearn.batch.TaskTree` (any :class:`~metalearn.protocols.TaskLoss`: masked ragged
  groups, policy-gradient surrogates over episodes collected while adapting) runs through the
  contract alone, one task at a time (:mod:`.task_loop`).

The per-task loop is the reference: a supervised batch run as a tree (``batch.as_tree(loss_fn)``)
gives the same numbers as its fast paths, which the tests check in float64. Algorithms call these
three functions and never branch on the kind of batch.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from ..batch import TaskBatch, TaskTree
from . import inner_loop, task_loop
from .inner_loop import LossFn, StepParams
from .params import ParamDict
from .rules import InnerRule

Forward = Callable[[ParamDict, Any], Any]
Metric = Callable[[Tensor, Tensor], Tensor] | str | None


@dataclass
class TaskRecord:
    """What a meta-step on a :class:`~metalearn.batch.TaskTree` leaves behind: the per-task
    metrics of its task loss (``[tasks]`` tensors: an episode's return) after adaptation and, on
    the support data, before it; the data collected while adapting, so that an outer step can
    re-evaluate the meta-loss on the same data; and the seconds spent collecting it."""

    metrics: dict[str, Tensor] = field(default_factory=dict)
    before: dict[str, Tensor] = field(default_factory=dict)
    collected: task_loop.Collected | None = None
    collect_seconds: float = 0.0


def meta_loss(forward: Forward, loss_fn: LossFn, params: ParamDict, batch: TaskBatch | TaskTree,
              rule: InnerRule, steps: int, mode: str = "second_order", engine: str = "loop",
              fast_keys: Sequence[str] | None = None, *, collected: task_loop.Collected | None = None,
              objective: task_loop.Objective | None = None, record: TaskRecord | None = None) -> Tensor:
    """The meta-batch's mean query loss after adapting each task on its support set (differentiable
    in ``params``). A TaskTree re-uses ``collected`` data when given, forms each task's outer loss
    with ``objective`` when given (:data:`.task_loop.Objective`) and fills ``record``."""
    if isinstance(batch, TaskTree):
        out = task_loop.tree_step(forward, batch, params, rule, steps, mode, fast_keys, collected, objective)
        _fill(record, out)
        return out.loss
    _tree_only("an outer objective", objective)
    return inner_loop.meta_loss(forward, loss_fn, params, batch, rule, steps, mode, engine, fast_keys)


def meta_backward(forward: Forward, loss_fn: LossFn, params: ParamDict, batch: TaskBatch | TaskTree,
                  rule: InnerRule, steps: int, mode: str = "second_order", engine: str = "loop",
                  fast_keys: Sequence[str] | None = None, scale: float = 1.0, *,
                  objective: task_loop.Objective | None = None, record: TaskRecord | None = None) -> Tensor:
    """``(scale * meta_loss).backward()`` with one task's graph alive at a time (the loop engine
    and a TaskTree whose data is collected task by task); returns the detached meta-loss and fills
    ``record`` for a TaskTree."""
    if isinstance(batch, TaskTree):
        out = task_loop.tree_backward(forward, batch, params, rule, steps, mode, fast_keys, scale, objective)
        _fill(record, out)
        return out.loss
    _tree_only("an outer objective", objective)
    return inner_loop.meta_backward(forward, loss_fn, params, batch, rule, steps, mode, engine, fast_keys, scale)


def adaptation_curve(forward: Forward, loss_fn: LossFn, params: ParamDict, batch: TaskBatch | TaskTree,
                     rule: InnerRule, steps: int, engine: str = "loop", metric: Metric = None,
                     fast_keys: Sequence[str] | None = None, safeguard: bool = False,
                     step_params: StepParams | None = None) -> Tensor:
    """Each task's query metric before and after each of ``steps`` first-order inner updates,
    ``[tasks, steps + 1]``: ``metric(outputs, targets)`` for a TaskBatch, the name of one of the
    task loss's metrics for a TaskTree (default: the loss). The safeguard and a per-step hook are
    fast-path capabilities of supervised batches."""
    if isinstance(batch, TaskTree):
        if metric is not None and not isinstance(metric, str):
            raise TypeError("a TaskTree is scored by the name of one of its task loss's metrics")
        if safeguard or step_params is not None:
            raise ValueError("the safeguard and a per-step hook are for supervised TaskBatches, not a TaskTree")
        return task_loop.adaptation_curve_tasks(forward, batch, params, rule, steps, fast_keys, metric)
    if isinstance(metric, str):
        raise TypeError(f"supervised task batches are scored by a function, not by name ({metric!r})")
    return inner_loop.adaptation_curve(forward, loss_fn, params, batch, rule, steps, engine=engine, metric=metric,
                                       fast_keys=fast_keys, safeguard=safeguard, step_params=step_params)


def supervised(who: str, batch: TaskBatch | TaskTree, metric: Metric) -> tuple[TaskBatch, LossFn | None]:
    """``batch`` and ``metric`` for an algorithm that adapts supervised task batches only (its own
    inner loop needs the stacked pairs): a TypeError naming ``who`` for a TaskTree or a metric's name."""
    if isinstance(batch, TaskTree):
        raise TypeError(f"{who} adapts supervised task batches only, not a TaskTree")
    if isinstance(metric, str):
        raise TypeError(f"supervised task batches are scored by a function, not by name ({metric!r})")
    return batch, metric


def _tree_only(what: str, value: Any) -> None:
    if value is not None:
        raise TypeError(f"{what} is for TaskTrees (any task loss); supervised TaskBatches take the fast paths")


def _fill(record: TaskRecord | None, out: task_loop.TreeStep) -> None:
    if record is not None:
        record.metrics, record.before, record.collected = out.metrics, out.before, out.collected
        record.collect_seconds = out.collect_seconds
