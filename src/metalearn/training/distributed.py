"""Data-parallel meta-training over several processes or machines with ``torch.distributed``.

Launch the ordinary CLI with ``torchrun`` (it sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...):

    torchrun --nproc-per-node 2 -m metalearn train omniglot-5w1s --out runs/omni
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --master-port 29500 \\
             --nproc-per-node 8 -m metalearn train ...

Every process samples the same meta-batch (same seeded stream), takes its contiguous share of the
tasks, computes the meta-loss of its share scaled by ``share / meta_batch``, and the gradients are
summed with an all-reduce: the update equals the single-process one up to floating-point summation
order. Validation is sharded the same way. Only rank 0 writes checkpoints and logs; every rank
reads the checkpoint when resuming. The backend is ``nccl`` on CUDA and ``gloo`` on CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..batch import TaskBatch
from ..errors import MetalearnError


@dataclass
class DistContext:
    """This process's place in a ``torchrun`` job (rank, world size, device), and the collectives the
    trainer uses; one process: rank 0 of 1."""
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` items."""
        if n < self.world:
            raise MetalearnError(f"{n} tasks cannot be split over {self.world} processes; use a meta-batch "
                                 f"(and validation set) of at least {self.world} tasks")
        bounds = [n * r // self.world for r in range(self.world + 1)]
        return slice(bounds[self.rank], bounds[self.rank + 1])

    def local_batch(self, batch: TaskBatch) -> TaskBatch:
        if not getattr(batch, "shardable", False):
            raise MetalearnError("distributed training splits the tasks of episodic meta-batches; the "
                                 "transfer baseline and the learned optimizer train in one process")
        return batch[self.shard(batch.num_tasks)]

    def sum(self, value: Tensor) -> Tensor:
        if self.active:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def all_reduce_grads(self, module: nn.Module) -> None:
        if not self.active:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            i = 0
            for g in grads:
                g.copy_(flat[i:i + g.numel()].view_as(g))
                i += g.numel()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on one (e.g. a Ctrl-C seen by one process)."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self, teardown: bool = True) -> None:
        """Leave together (a peer leaving early can abort gloo), then tear the process group down.
        ``teardown=False`` only waits for every rank: for a process that ends right after with
        ``os._exit``, since gloo's teardown at exit can race its peer's and abort the process."""
        if self.active and dist.is_initialized():
            dist.barrier()
            if teardown:
                dist.destroy_process_group()


def from_environment(device: str | torch.device = "cpu") -> DistContext:
    """A ``DistContext`` from torchrun's variables, initialising the process group when
    ``WORLD_SIZE`` > 1; a single-process context otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device(device)
    if world <= 1:
        return DistContext(0, 1, device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    rank = dist.get_rank()
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return DistContext(rank, dist.get_world_size(), device)
