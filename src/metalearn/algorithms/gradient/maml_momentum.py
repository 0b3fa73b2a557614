"""MAML with a heavy-ball momentum inner loop: the inner updates are
``v <- beta v + g``, ``theta <- theta - alpha v`` (Polyak 1964), differentiated through as in
MAML (Finn et al. 2017). With ``inner_momentum=0`` it is MAML. It shows what an algorithm of this
library is: a model, an inner rule composed from the functional core's transforms, a mode.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...errors import ConfigError
from ...functional import InnerRule, chain, scale, trace
from ..base import ModeSettings
from .maml import MAML


@dataclass
class MAMLMomentumSettings(ModeSettings):
    """The ``algo.*`` keys of ``mamlmom``: MAML's and ``inner_momentum``, the heavy-ball beta in [0, 1)."""
    inner_momentum: float = 0.9      # beta of the inner loop's heavy-ball momentum

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.inner_momentum < 1.0:
            raise ConfigError(f"algo.inner_momentum must be in [0, 1), got {self.inner_momentum}")


class MAMLMomentum(MAML):
    """MAML whose inner loop is SGD with heavy-ball momentum ``inner_momentum``."""

    name = "mamlmom"

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1, mode: str = "second_order",
                 loss: str = "mse", engine: str = "auto", inner_momentum: float = 0.9) -> None:
        super().__init__(model, inner_lr, inner_steps, mode, loss, engine)
        self.inner_momentum = float(inner_momentum)
        self._rule = chain(trace(self.inner_momentum), scale(-self.inner_lr))

    def inner_rule(self) -> InnerRule:
        return self._rule
