"""MAML: Finn, Abbeel & Levine (2017), "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML. Learns an initialisation from which a few gradient steps on a new task's support
set give low loss on its query set. Second order differentiates through the inner steps;
first order (FOMAML, section 5.2) treats the inner gradients as constants.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...batch import TaskBatch, TaskTree
from ...errors import MetalearnError
from ...functional import InnerRule, Objective, TaskRecord, check_mode, meta_backward, meta_loss, sgd
from ..base import Algorithm, ModeSettings, OuterPart

MAMLSettings = ModeSettings


class MAML(Algorithm):
    """MAML with an SGD inner loop on all parameters.

    Args:
        model: any ``nn.Module`` whose forward is a function of its parameters.
        inner_lr: the inner-loop step size alpha.
        inner_steps: inner gradient steps during meta-training (and the default for ``adapt``).
        mode: ``"second_order"`` or ``"first_order"``.
        loss: ``"mse"`` (regression) or ``"cross_entropy"`` (classification).
        engine: ``"auto"``, ``"loop"`` (reference per-task loop) or ``"vmap"``.
        outer: the outer step as a part (:class:`~metalearn.algorithms.base.OuterPart`): each
            task's outer loss over a TaskTree and the optimizer of the outer step (None: the query
            loss and the trainer's optimizer). MAML-TRPO is MAML with a trust-region part.
    """

    name = "maml"
    graphable = True
    task_kinds: tuple[str, ...] = ("regression", "classification", "reinforcement")
    accepts_task_losses = True
    adapts_while_training = True   # False: a transfer baseline, no inner step while training (still at test time)

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 mode: str = "second_order", loss: str = "mse", engine: str = "auto",
                 outer: OuterPart | None = None) -> None:
        super().__init__(model, loss=loss, inner_steps=inner_steps, engine=engine)
        check_mode(mode)
        self.inner_lr = float(inner_lr)
        self.mode = mode
        self._rule = sgd(self.inner_lr)
        self.outer = outer
        self.task_metrics: dict[str, Tensor] = {}   # per-task metrics of the last TaskTree meta-step
        self._collected: Any = None

    def inner_rule(self) -> InnerRule:
        return self._rule

    @property
    def train_steps(self) -> int:
        """Inner steps during meta-training: ``inner_steps``, or 0 for a transfer baseline."""
        return self.inner_steps if self.adapts_while_training else 0

    @property
    def objective(self) -> Objective | None:
        """Each task's outer loss over a TaskTree (None: its query loss)."""
        return None if self.outer is None else self.outer.objective

    def outer_step(self, params: Any, lr: float) -> torch.optim.Optimizer | None:
        return None if self.outer is None else self.outer.optimizer(params, lr)

    # one contract for every meta-batch: the functional core takes a supervised TaskBatch's fast
    # paths, and runs a TaskTree (any task loss: ragged masked groups, policy-gradient surrogates)
    # through the task loss's contract, recording its per-task metrics and collected data
    def meta_loss(self, batch: TaskBatch | TaskTree) -> Tensor:
        record = TaskRecord()
        loss = meta_loss(self._forward, self.loss_fn, self.params(), self.view(batch), self.inner_rule(),
                         self.train_steps, self.mode, self.engine, self.fast_keys(), objective=self.objective,
                         record=record)
        self._keep(record)
        return loss

    def meta_backward(self, batch: TaskBatch | TaskTree, scale: float = 1.0) -> Tensor:
        record = TaskRecord()
        loss = meta_backward(self._forward, self.loss_fn, self.params(), self.view(batch), self.inner_rule(),
                             self.train_steps, self.mode, self.engine, self.fast_keys(), scale,
                             objective=self.objective, record=record)
        self._keep(record)
        return loss

    def _keep(self, record: TaskRecord) -> None:
        self.task_metrics, self._collected = record.metrics, record.collected
        if record.collected is not None:
            self.last_metrics = self.step_metrics(record)

    def step_metrics(self, record: TaskRecord) -> dict[str, float]:
        """The numbers a TaskTree meta-step logs beside its loss: the mean over tasks of each of the
        task loss's metrics after adaptation (``return``) and before it (``return_before``)."""
        out = {f"{k}_before": float(v.mean()) for k, v in record.before.items()}
        out.update({k: float(v.mean()) for k, v in record.metrics.items()})
        return out

    def closure(self, batch: TaskBatch | TaskTree) -> MetaClosure:
        return MetaClosure(self, self.view(batch), self._collected)


class MetaClosure:
    """The meta-loss of one meta-batch at the current parameters, re-evaluated on the data its last
    meta-step collected (a TaskTree's episodes): ``closure()``, what an outer step that searches
    along its direction calls; ``closure.kl()``, the mean of the outer part's ``constraint`` (the
    KL of the post-update policies from those that collected the query data, TRPO's bound); and
    ``closure.values()``, both as numbers (first-order adaptation: the same values, no graph)."""

    def __init__(self, algo: MAML, batch: TaskBatch | TaskTree, collected: Any) -> None:
        self.algo, self.batch, self.collected = algo, batch, collected

    def _mean(self, objective: Objective | None, mode: str | None) -> Tensor:
        a = self.algo
        return meta_loss(a._forward, a.loss_fn, a.params(), self.batch, a.inner_rule(), a.train_steps,
                         mode or a.mode, a.engine, a.fast_keys(), collected=self.collected, objective=objective)

    def __call__(self, mode: str | None = None) -> Tensor:
        return self._mean(self.algo.objective, mode)

    def kl(self, mode: str | None = None) -> Tensor:
        constraint = getattr(self.algo.outer, "constraint", None)
        if constraint is None:
            raise MetalearnError(f"{self.algo.name}'s outer step has no constraint (closure.kl is a trust region's "
                                 f"bound); configure it with one, e.g. outer=TrustRegion()")
        return self._mean(constraint, mode)

    def values(self) -> tuple[float, float]:
        with torch.enable_grad():
            return float(self("first_order").detach()), float(self.kl("first_order").detach())
