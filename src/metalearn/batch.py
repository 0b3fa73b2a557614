"""``TaskBatch``: the tasks of a meta-batch as stacked tensors with a leading task dimension."""
from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]

    def task(self, i: int) -> "TaskBatch":
        """The ``i``-th task as a batch of one."""
        return self[i:i + 1]

    def __getitem__(self, index: slice) -> "TaskBatch":
        return TaskBatch(self.support_x[index], self.support_y[index],
                         self.query_x[index], self.query_y[index])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           non_blocking: bool = False) -> "TaskBatch":
        """Move to a device; ``dtype`` converts floating-point tensors only (labels stay integers).
        ``non_blocking`` from a CPU batch to CUDA goes through pinned memory, so the host does
        not wait for the device's queued work."""
        return TaskBatch(*(move(t, device, dtype, non_blocking)
                           for t in (self.support_x, self.support_y, self.query_x, self.query_y)))


def move(t: Tensor, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
         non_blocking: bool = False) -> Tensor:
    """``t`` on ``device``; ``dtype`` applies to floating-point tensors only; ``non_blocking``
    copies from CPU to CUDA go through pinned memory so that the host does not wait."""
    if non_blocking and t.device.type == "cpu" and device is not None and torch.device(device).type == "cuda":
        t = t.contiguous().pin_memory()  # (expanded label tensors cannot be pinned as they are)
    if dtype is not None and t.is_floating_point():
        return t.to(device=device, dtype=dtype, non_blocking=non_blocking)
    return t.to(device=device, non_blocking=non_blocking)
