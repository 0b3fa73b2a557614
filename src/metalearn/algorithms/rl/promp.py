"""ProMP: Rothfuss, Lee, Clavera, Asfour & Abbeel (2019), "ProMP: Proximal Meta-Policy Search", ICLR.

MAML for policies with (1) the low-variance curvature (LVC) inner objective, the
importance-weighted surrogate whose Hessian carries the sampling term of the meta-gradient, and
(2) a proximal outer step in place of TRPO: the clipped surrogate of PPO (Schulman et al. 2017) on
the query episodes at the adapted parameters, minus a KL penalty that keeps the pre-update policy
near the one that collected the support episodes, optimised by several Adam steps on the same
episodes per meta-iteration (the inner adaptation re-computed at each, importance-weighted).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ...errors import ConfigError
from .maml_trpo import MAMLTRPO, MAMLTRPOSettings
from .outer import Proximal


@dataclass
class ProMPSettings(MAMLTRPOSettings):
    """The ``algo.*`` keys of ``promp``: MAML-TRPO's and ProMP's clipped outer objective (clipping,
    KL penalty, Adam steps per meta-iteration).
    """
    clip_eps: float = 0.3         # ProMP: clipping of the outer likelihood ratio
    kl_penalty: float = 5e-4      # ProMP: weight of KL(pre-update policy that sampled || pre-update policy)
    outer_steps: int = 5          # ProMP: Adam steps per meta-iteration on the same episodes

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.clip_eps < 1:
            raise ConfigError(f"algo.clip_eps must be in (0, 1), got {self.clip_eps}")
        if self.kl_penalty < 0 or self.outer_steps < 1:
            raise ConfigError(f"algo.kl_penalty must be >= 0 and algo.outer_steps >= 1, got {self.kl_penalty} "
                              f"and {self.outer_steps}")


class ProMP(MAMLTRPO):
    """ProMP (see the module docstring): MAML-TRPO with the LVC inner objective, configured with the
    :class:`~.outer.Proximal` outer part; it overrides no method. ``train.lr`` is Adam's step size
    (1e-3 in the paper)."""

    name = "promp"

    def __init__(self, model: nn.Module, clip_eps: float = 0.3, kl_penalty: float = 5e-4, outer_steps: int = 5,
                 **kwargs: Any) -> None:
        kwargs["estimator"] = "lvc"
        kwargs["outer"] = Proximal(float(clip_eps), float(kl_penalty), int(outer_steps))
        super().__init__(model, **kwargs)
