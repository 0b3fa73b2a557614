"""Prototypical Networks: Snell, Swersky & Zemel (2017), "Prototypical Networks for Few-shot
Learning", NeurIPS. No inner loop: each class is represented by the mean embedding of its
support examples (its prototype), and a query is classified by a softmax over negative squared
Euclidean distances to the prototypes. The paper trains with more ways than it tests with
(e.g. 60-way episodes for 5-way testing on Omniglot): set ``task.ways`` for training and
``eval.ways`` for testing.

The encoder's BatchNorm uses the batch statistics of each episode (support and query together),
like the MAML-family models here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...batch import TaskBatch, TaskTree
from ...functional import supervised
from ...protocols import TaskFamily
from ..base import Algorithm


@dataclass
class ProtoNetSettings:
    """ProtoNets have nothing to set: no inner loop."""


# how far below the lowest present class a class without support examples scores (a finite
# logit, so that a query of such a class gives a large but finite loss)
ABSENT_MARGIN = 20.0


def prototype_logits(emb_s: Tensor, ys: Tensor, emb_q: Tensor, ways: int | None = None) -> Tensor:
    """Negative squared distances of query embeddings to the class means of support embeddings.

    ``ways`` (default: the largest support label + 1) columns; a class with no support example
    (tasks whose support is drawn at random, such as a table group's rows) has no prototype and
    scores ``ABSENT_MARGIN`` below the lowest present class."""
    ways = int(ys.max()) + 1 if ways is None else max(ways, int(ys.max()) + 1)
    onehot = F.one_hot(ys, ways).to(emb_s.dtype)                 # [Ns, ways]
    counts = onehot.sum(0)
    present = counts > 0
    protos = onehot.T @ emb_s / counts.clamp_min(1).unsqueeze(1)  # [ways, D]
    logits = -(emb_q.unsqueeze(1) - protos.unsqueeze(0)).pow(2).sum(-1)
    if bool(present.all()):
        return logits
    floor = logits[:, present].min(dim=1, keepdim=True).values.detach() - ABSENT_MARGIN
    return torch.where(present.unsqueeze(0), logits, floor.expand_as(logits))


class ProtoLearner:
    """A ProtoNet adapted to one task: the encoder plus the task's prototypes."""

    def __init__(self, encoder: nn.Module, xs: Tensor, ys: Tensor) -> None:
        self.encoder, self.xs, self.ys = encoder, xs, ys

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        emb = self.encoder(torch.cat([self.xs, x])).flatten(1)
        return prototype_logits(emb[: len(self.xs)], self.ys, emb[len(self.xs):])


class ProtoNet(Algorithm):
    """Prototypical Networks: classify a query by a softmax over negative squared Euclidean distances to
    the mean embedding of each class's support examples. No inner loop.

    Args:
        model: the encoder, from inputs to embeddings.

    References:
        Snell, Swersky and Zemel (2017), "Prototypical Networks for Few-shot Learning", NeurIPS.
    """
    name = "protonet"
    supports_safeguard = False  # no inner loop
    task_kinds = ("classification",)
    gradient_based = False
    encoder_only = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, loss="cross_entropy", inner_steps=0, engine="loop")

    @classmethod
    def from_settings(cls, model: nn.Module, family: TaskFamily, settings: Any) -> ProtoNet:
        return cls(model)

    def _task_logits(self, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor | None = None) -> Tensor:
        """Query logits; with the query labels ``yq``, one column for every class of either set."""
        emb = self.model(torch.cat([xs, xq])).flatten(1)
        ways = None if yq is None else int(torch.cat([ys, yq]).max()) + 1
        return prototype_logits(emb[: len(xs)], ys, emb[len(xs):], ways)

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        total: Tensor | float = 0.0
        for t in range(batch.num_tasks):
            logits = self._task_logits(batch.support_x[t], batch.support_y[t], batch.query_x[t], batch.query_y[t])
            total = total + F.cross_entropy(logits, batch.query_y[t])
        return cast(Tensor, total) / batch.num_tasks

    def adapt(self, x: Tensor, y: Tensor, steps: int | None = None) -> ProtoLearner:  # type: ignore[override]
        return ProtoLearner(self.model, x, y)

    @torch.no_grad()
    def adaptation_curve(self, batch: TaskBatch | TaskTree, steps: int,
                         metric: Callable[[Tensor, Tensor], Tensor] | str | None = None) -> Tensor:
        """The same value at every step count: prototypes need no gradient steps."""
        batch, metric = supervised(self.name, batch, metric)
        metric = metric or self.loss_fn
        vals = torch.stack([metric(self._task_logits(batch.support_x[t], batch.support_y[t], batch.query_x[t],
                                                     batch.query_y[t]), batch.query_y[t])
                            for t in range(batch.num_tasks)])
        return vals.unsqueeze(1).expand(-1, steps + 1).clone()
