"""MAML: Finn, Abbeel & Levine (2017), "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML. Learns an initialisation from which a few gradient steps on a new task's support
set give low loss on its query set. Second order differentiates through the inner steps;
first order (FOMAML, section 5.2) treats the inner gradients as constants.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..functional import InnerRule, check_mode, meta_backward, meta_loss, sgd
from ..batch import TaskBatch
from .base import Algorithm


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

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 mode: str = "second_order", loss: str = "mse", engine: str = "auto") -> None:
        super().__init__(model, loss=loss, inner_steps=inner_steps, engine=engine)
        check_mode(mode)
        self.inner_lr = float(inner_lr)
        self.mode = mode
        self._rule = sgd(self.inner_lr)

    def inner_rule(self) -> InnerRule:
        return self._rule

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        return meta_loss(self._forward, self.loss_fn, self.params(), batch, self.inner_rule(),
                         self.inner_steps, self.mode, self.engine, self.fast_keys())

    def meta_backward(self, batch: TaskBatch, scale: float = 1.0) -> Tensor:
        return meta_backward(self._forward, self.loss_fn, self.params(), batch, self.inner_rule(),
                             self.inner_steps, self.mode, self.engine, self.fast_keys(), scale)
