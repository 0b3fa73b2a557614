"""The tasks of a meta-batch: ``TaskBatch`` (supervised ``(x, y)`` tasks as stacked tensors with a
leading task dimension, whose task loss is :class:`SupervisedLoss`) and ``TaskTree`` (any task
loss over a pytree of tensors)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class TaskBatch:
    """Support and query sets of ``num_tasks`` tasks, stacked.

    ``support_x``: ``[tasks, n_support, *input_shape]``, ``support_y``: ``[tasks, n_support, *target_shape]``,
    and the same for the query set. One stacked object lets the engine run the tasks however is
    fastest: a per-task loop, ``vmap``, or split across processes.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    def __post_init__(self) -> None:
        n = self.support_x.shape[0]
        for name in ("support_y", "query_x", "query_y"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"TaskBatch: {name} has {getattr(self, name).shape[0]} tasks but "
                                 f"support_x has {n}; all four tensors need the same leading task dimension")

    shardable = True   # the tasks can be split across processes (``batch[slice]``)

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]

    @property
    def total_weight(self) -> float:
        """The tasks' weight in a meta-batch mean (every task counts once)."""
        return float(self.num_tasks)

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.support_x, self.support_y, self.query_x, self.query_y

    def map(self, fn: Callable[[Tensor], Tensor]) -> TaskBatch:
        """A batch of ``fn`` applied to each of the four tensors."""
        return TaskBatch(*(fn(t) for t in self.tensors()))

    def task(self, i: int) -> TaskBatch:
        """The ``i``-th task as a batch of one."""
        return self[i:i + 1]

    def __getitem__(self, index: slice) -> TaskBatch:
        return self.map(lambda t: t[index])

    @staticmethod
    def cat(batches: list[TaskBatch]) -> TaskBatch:
        """One batch of the tasks of ``batches``, in order (their shapes past the task dimension agree)."""
        if len(batches) == 1:
            return batches[0]
        return TaskBatch(*(torch.cat(parts) for parts in zip(*(b.tensors() for b in batches))))

    def as_tree(self, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> TaskTree:
        """The same tasks as a :class:`TaskTree` whose task loss is :class:`SupervisedLoss`
        (``loss_fn`` of the model's outputs and the targets): what the per-task reference engine of
        the task-loss contract runs, and what the fast paths of supervised batches are tested against."""
        return TaskTree({"support_x": self.support_x, "support_y": self.support_y, "query_x": self.query_x,
                         "query_y": self.query_y}, SupervisedLoss(loss_fn))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           non_blocking: bool = False) -> TaskBatch:
        """Move to a device; ``dtype`` converts floating-point tensors only (labels stay integers).
        ``non_blocking`` from a CPU batch to CUDA goes through pinned memory, so the host does
        not wait for the device's queued work."""
        return self.map(lambda t: move(t, device, dtype, non_blocking))


def move(t: Tensor, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
         non_blocking: bool = False) -> Tensor:
    """``t`` on ``device``; ``dtype`` applies to floating-point tensors only; ``non_blocking``
    copies from CPU to CUDA go through pinned memory so that the host does not wait."""
    if non_blocking and t.device.type == "cpu" and device is not None and torch.device(device).type == "cuda":
        t = t.contiguous().pin_memory()  # (expanded label tensors cannot be pinned as they are)
    if dtype is not None and t.is_floating_point():
        return t.to(device=device, dtype=dtype, non_blocking=non_blocking)
    return t.to(device=device, non_blocking=non_blocking)


class SupervisedLoss:
    """The :class:`~metalearn.protocols.TaskLoss` of supervised ``(x, y)`` tasks: the support and
    query sets are the task's own pairs (nothing is collected), and a loss is ``loss_fn`` of the
    model's outputs and the targets. A :class:`TaskBatch` holds such tasks stacked, which lets the
    functional core take its fast paths (``vmap``, the safeguard, a per-step hook) for them."""

    def __init__(self, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.loss_fn = loss_fn

    def support(self, forward: Callable[[Any, Any], Any], params: dict[str, Tensor], task: dict[str, Tensor],
                generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        return task["support_x"], task["support_y"]

    def query(self, forward: Callable[[Any, Any], Any], params: dict[str, Tensor], task: dict[str, Tensor],
              generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        return task["query_x"], task["query_y"]

    def loss(self, forward: Callable[[Any, Any], Any], params: dict[str, Tensor], data: tuple[Tensor, Tensor]
             ) -> Tensor:
        x, y = data
        return self.loss_fn(forward(params, x), y)

    def metrics(self, forward: Callable[[Any, Any], Any], params: dict[str, Tensor], data: tuple[Tensor, Tensor]
                ) -> dict[str, Tensor]:
        return {}


@dataclass(frozen=True)
class TaskTree:
    """The tasks of a meta-batch for any task loss: a pytree of tensors with a leading task
    dimension (``data``), the :class:`~metalearn.protocols.TaskLoss` that reads one task's slice
    of it, per-task weights in the meta-batch mean (None: equal), and per-task seeds for data that
    is collected while adapting (reinforcement learning), so that the same tasks give the same
    episodes in every process and after a resume.

    Ragged tasks (groups with different numbers of rows, episodes of different lengths) are
    padded to a common length, with a mask in ``data`` that the task loss applies.
    """

    data: dict[str, Tensor]
    task_loss: Any
    weights: Tensor | None = None
    seeds: Tensor | None = None

    shardable = True

    def __post_init__(self) -> None:
        n = self.num_tasks
        for name, t in [*self.data.items(), ("weights", self.weights), ("seeds", self.seeds)]:
            if t is not None and t.shape[0] != n:
                raise ValueError(f"TaskTree: {name} has {t.shape[0]} tasks but the others have {n}; every "
                                 f"tensor needs the same leading task dimension")

    @property
    def num_tasks(self) -> int:
        return next(iter(self.data.values())).shape[0]

    @property
    def total_weight(self) -> float:
        return float(self.num_tasks) if self.weights is None else float(self.weights.sum())

    def task(self, i: int) -> dict[str, Tensor]:
        """Task ``i``'s slice of the data (no task dimension)."""
        return {k: v[i] for k, v in self.data.items()}

    def generator(self, i: int) -> torch.Generator | None:
        """A generator for task ``i``'s collected data (None without seeds)."""
        if self.seeds is None:
            return None
        return torch.Generator().manual_seed(int(self.seeds[i]))

    def __getitem__(self, index: slice) -> TaskTree:
        def cut(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index]

        return TaskTree({k: v[index] for k, v in self.data.items()}, self.task_loss, cut(self.weights),
                        cut(self.seeds))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           non_blocking: bool = False) -> TaskTree:
        weights = None if self.weights is None else move(self.weights, device, dtype, non_blocking)
        return TaskTree({k: move(v, device, dtype, non_blocking) for k, v in self.data.items()}, self.task_loss,
                        weights, self.seeds)
