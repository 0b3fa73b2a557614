"""Ridge regression in closed form, the linear baselines of grouped-table evaluation: pooled over
the meta-training groups, fitted on a new group's support rows alone, or fitted on them with the
weights shrunk toward the pooled ones (the linear counterpart of fine-tuning a pooled model).
With lagged readings as inputs it is an autoregressive (ARX) forecaster."""
from __future__ import annotations

import torch
from torch import Tensor


def _design(x: Tensor) -> Tensor:
    return torch.cat([x.double(), torch.ones(x.shape[0], 1, dtype=torch.float64)], dim=1)


def fit_ridge(x: Tensor, y: Tensor, lam: float, prior: Tensor | None = None) -> Tensor:
    """Weights (the intercept last) minimising ``|X w - y|^2 + lam |w - prior|^2`` over all but the
    intercept, which is pulled toward the prior's intercept only weakly (1e-6 lam); ``prior`` None
    is zero (plain ridge). ``x``: ``[rows, features]``, ``y``: ``[rows]`` or ``[rows, 1]``."""
    a = _design(x)
    d = a.shape[1]
    pen = torch.full((d,), float(lam), dtype=torch.float64)
    pen[-1] = 1e-6 * float(lam)
    p = torch.zeros(d, dtype=torch.float64) if prior is None else prior.double()
    lhs = a.T @ a + torch.diag(pen)
    rhs = a.T @ y.double().reshape(-1) + pen * p
    return torch.linalg.solve(lhs, rhs)


def predict_ridge(w: Tensor, x: Tensor) -> Tensor:
    """``[rows]`` predictions of the weights ``w`` (from :func:`fit_ridge`) for inputs ``x``."""
    return _design(x) @ w
