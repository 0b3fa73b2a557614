"""The transfer baseline of Finn et al. (2017), section 5.1: one network pretrained jointly on the
pooled data of all training tasks (no inner loop), then fine-tuned on a new task's support set with
the same SGD steps MAML uses. It shows what meta-learning adds over ordinary pretraining.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ...batch import TaskBatch
from ...functional import InnerRule, sgd
from ..base import Algorithm


class Pretrain(Algorithm):
    """Joint training on every point of every task; adapts by plain fine-tuning at test time."""

    name = "pretrain"
    title = "pretrained baseline"

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 loss: str = "mse", engine: str = "auto") -> None:
        super().__init__(model, loss=loss, inner_steps=inner_steps, engine=engine)
        self.inner_lr = float(inner_lr)
        self._rule = sgd(self.inner_lr)

    def inner_rule(self) -> InnerRule:
        return self._rule

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        x = torch.cat([batch.support_x, batch.query_x], dim=1).flatten(0, 1)
        y = torch.cat([batch.support_y, batch.query_y], dim=1).flatten(0, 1)
        return self.loss_fn(self._forward(self.params(), x), y)
