"""MAML: Finn, Abbeel & Levine (2017), "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML. Learns an initialisation from which a few gradient steps on a new task's support
set give low loss on its query set. Second order differentiates through the inner steps;
first order (FOMAML, section 5.2) treats the inner gradients as constants.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from ...batch import TaskBatch, TaskTree
from ...functional import InnerRule, TaskRecord, check_mode, meta_backward, meta_loss, sgd
from ..base import Algorithm, ModeSettings

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
    """

    name = "maml"
    graphable = True
    task_kinds: tuple[str, ...] = ("regression", "classification", "reinforcement")
    accepts_task_losses = True

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 mode: str = "second_order", loss: str = "mse", engine: str = "auto") -> None:
        super().__init__(model, loss=loss, inner_steps=inner_steps, engine=engine)
        check_mode(mode)
        self.inner_lr = float(inner_lr)
        self.mode = mode
        self._rule = sgd(self.inner_lr)
        self.task_metrics: dict[str, Tensor] = {}   # per-task metrics of the last TaskTree meta-step
        self._collected: Any = None

    def inner_rule(self) -> InnerRule:
        return self._rule

    # one contract for every meta-batch: the functional core takes a supervised TaskBatch's fast
    # paths, and runs a TaskTree (any task loss: ragged masked groups, policy-gradient surrogates)
    # task by task, recording its per-task metrics and collected data
    def meta_loss(self, batch: TaskBatch | TaskTree) -> Tensor:
        record = TaskRecord()
        loss = meta_loss(self._forward, self.loss_fn, self.params(), batch, self.inner_rule(), self.inner_steps,
                         self.mode, self.engine, self.fast_keys(), record=record)
        self.task_metrics, self._collected = record.metrics, record.collected
        return loss

    def meta_backward(self, batch: TaskBatch | TaskTree, scale: float = 1.0) -> Tensor:
        record = TaskRecord()
        loss = meta_backward(self._forward, self.loss_fn, self.params(), batch, self.inner_rule(), self.inner_steps,
                             self.mode, self.engine, self.fast_keys(), scale, record=record)
        self.task_metrics, self._collected = record.metrics, record.collected
        return loss

    def closure(self, batch: TaskBatch | TaskTree) -> Callable[[], Tensor]:
        collected = self._collected  # a TaskTree is re-evaluated on the data the last meta-step collected
        return lambda: meta_loss(self._forward, self.loss_fn, self.params(), batch, self.inner_rule(),
                                 self.inner_steps, self.mode, self.engine, self.fast_keys(), collected=collected)
