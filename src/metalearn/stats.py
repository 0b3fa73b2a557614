"""Means with 95% confidence intervals (Student's t) over held-out tasks."""
from __future__ import annotations

import math
from typing import Sequence

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
