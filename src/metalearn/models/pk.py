"""A two-compartment pharmacokinetic model with zero-order infusions, and its fit to one patient by
maximum a posteriori around population values: the drug-level field's own baseline.

The model (the structure Minto et al. 1997 used for remifentanil): central volume V1, peripheral
volume V2, clearance CL and inter-compartmental clearance Q, all log-normal across patients. The
concentration after a unit-rate infusion is a sum of two exponentials; an infusion history of
piecewise-constant rates is a superposition of such responses (exact, no ODE solver).

Population fit (:func:`fit_population`): each meta-training patient's parameters are fitted to all
their samples under a weak prior, then the population mean and spread of the log parameters and
the residual SD of the log concentration are those of the fits. A new patient's parameters
(:func:`fit_patient`) are the MAP estimate from their support samples under that population prior;
with no samples they are the population's typical values.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

# typical remifentanil values (Minto 1997, a 40-year-old): CL 2.6 L/min, V1 5.1 L, Q 2.0 L/min, V2 9.8 L
TYPICAL = (2.6, 5.1, 2.0, 9.8)
PARAMS = ("CL", "V1", "Q", "V2")


def concentrations(theta: Tensor, times: Tensor, rates: Tensor, at: Tensor) -> Tensor:
    """Central concentrations (dose units per volume unit) at times ``at`` for log parameters
    ``theta = log(CL, V1, Q, V2)`` under infusion ``rates`` in force from ``times`` on."""
    cl, v1, q, v2 = theta.exp().unbind()
    k10, k12, k21 = cl / v1, q / v1, q / v2
    s = k10 + k12 + k21
    root = (s * s - 4 * k10 * k21).clamp_min(1e-12).sqrt()
    alpha, beta = (s + root) / 2, (s - root) / 2
    a1 = (alpha - k21) / (v1 * (alpha - beta))
    a2 = (k21 - beta) / (v1 * (alpha - beta))
    ends = torch.cat([times[1:], times.new_tensor([float("inf")])])
    t = at[:, None]
    tau_start = (t - times[None, :]).clamp_min(0)            # [obs, segments]
    tau_end = (t - ends[None, :]).clamp_min(0)
    out = torch.zeros_like(tau_start)
    for a, lam in ((a1, alpha), (a2, beta)):
        out = out + (a / lam) * (torch.exp(-lam * tau_end) - torch.exp(-lam * tau_start))
    return (out * rates[None, :]).sum(1)


@dataclass(frozen=True)
class Population:
    """Mean and SD of the log parameters across patients, and the residual SD of log concentration."""

    mean: Tensor      # [4]
    sd: Tensor        # [4]
    sigma: float


def fit_patient(times: np.ndarray, rates: np.ndarray, at: np.ndarray, log_conc: np.ndarray, pop: Population,
                iters: int = 60) -> Tensor:
    """MAP log parameters of one patient from samples ``log_conc`` at times ``at``."""
    mean = pop.mean.double()
    theta = mean.clone().requires_grad_(True)
    if len(at) == 0:
        return mean
    tt, rr = torch.tensor(times, dtype=torch.float64), torch.tensor(rates, dtype=torch.float64)
    aa, yy = torch.tensor(at, dtype=torch.float64), torch.tensor(log_conc, dtype=torch.float64)
    opt = torch.optim.LBFGS([theta], lr=1, max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        pred = concentrations(theta, tt, rr, aa).clamp_min(1e-12).log()
        loss = ((pred - yy) ** 2).sum() / (2 * pop.sigma**2) + (((theta - mean) / pop.sd) ** 2).sum() / 2
        loss.backward()
        return loss

    opt.step(closure)
    out = theta.detach()
    return out if torch.isfinite(out).all() else mean


def fit_population(patients: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> Population:
    """Population values from ``(times, rates, at, log_conc)`` of the meta-training patients."""
    weak = Population(torch.tensor(TYPICAL, dtype=torch.float64).log(), torch.full((4,), 2.0, dtype=torch.float64),
                      0.3)
    fits = torch.stack([fit_patient(*p, pop=weak, iters=200) for p in patients])
    resid = []
    for theta, (times, rates, at, y) in zip(fits, patients):
        pred = concentrations(theta, torch.tensor(times), torch.tensor(rates), torch.tensor(at))
        resid.append(pred.clamp_min(1e-12).log().numpy() - y)
    sigma = float(np.sqrt(np.mean(np.concatenate(resid) ** 2)))
    return Population(fits.mean(0), fits.std(0).clamp_min(0.05), max(sigma, 0.01))
