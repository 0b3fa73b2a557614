"""Meta-SGD: Li, Zhou, Chen & Li (2017), "Meta-SGD: Learning to Learn Quickly for Few-Shot
Learning". One inner step ``theta - alpha * grad`` with ``alpha`` a learned rate per coordinate,
of the same shape as ``theta``, meta-learned jointly with the initialisation.
"""
from __future__ import annotations

import torch
from torch import nn

from ...functional import InnerRule
from ...functional.params import param_key
from ...functional.rules import per_parameter_sgd
from .maml import MAML


class MetaSGD(MAML):
    """MAML whose inner rates are learned, one per parameter coordinate (initialised to ``inner_lr``)."""

    name = "metasgd"

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 mode: str = "second_order", loss: str = "mse", engine: str = "auto") -> None:
        super().__init__(model, inner_lr, inner_steps, mode, loss, engine)
        self.lrs = nn.ParameterDict({param_key(n): nn.Parameter(torch.full_like(p, self.inner_lr))
                                     for n, p in self.params().items()})

    def inner_rule(self) -> InnerRule:
        return per_parameter_sgd({n: self.lrs[param_key(n)] for n in self.params()})
