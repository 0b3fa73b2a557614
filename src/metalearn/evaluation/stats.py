"""Means with 95% confidence intervals (Student's t) over held-out tasks, and paired differences
of two methods scored on the same tasks."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

_Z975 = 1.959963984540054
_T975_SMALL = {1: 12.7062047, 2: 4.30265273, 3: 3.18244631, 4: 2.77644511, 5: 2.57058184}


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (Cornish-Fisher beyond 5)."""
    if df <= 0:
        return math.inf
    if df in _T975_SMALL:
        return _T975_SMALL[df]
    z = _Z975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def mean_ci(values: Sequence[float] | torch.Tensor) -> tuple[float, float]:
    """``(mean, half_width)`` of the 95% confidence interval of the mean."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    n = v.numel()
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(v.mean())
    if n == 1:
        return mean, math.inf
    return mean, t_quantile_975(n - 1) * float(v.std(unbiased=True)) / math.sqrt(n)


@dataclass(frozen=True)
class Paired:
    """The paired difference ``a - b`` of two methods scored on the same tasks: its mean with a 95%
    CI (Student's t on the per-task differences), and how many tasks each method wins (``better``
    says which direction is better: "higher" or "lower")."""

    mean: float
    ci: float
    wins: int      # tasks where ``a`` is better than ``b``
    losses: int    # tasks where ``b`` is better
    ties: int
    n: int

    def cell(self, digits: int = 2) -> str:
        return f"{self.mean:+.{digits}f} ± {self.ci:.{digits}f}"

    @property
    def significant(self) -> bool:
        """The 95% CI of the difference excludes zero."""
        return abs(self.mean) > self.ci


def paired(a: Sequence[float] | torch.Tensor, b: Sequence[float] | torch.Tensor, better: str = "higher") -> Paired:
    """:class:`Paired` statistics of ``a - b`` over the same tasks."""
    x = torch.as_tensor(a, dtype=torch.float64).flatten()
    y = torch.as_tensor(b, dtype=torch.float64).flatten()
    if x.shape != y.shape:
        raise ValueError(f"paired statistics need the same tasks: {x.numel()} values against {y.numel()}")
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    d = x - y
    mean, ci = mean_ci(d)
    up, down = int((d > 0).sum()), int((d < 0).sum())
    wins, losses = (up, down) if better == "higher" else (down, up)
    return Paired(mean, ci, wins, losses, d.numel() - up - down, d.numel())
