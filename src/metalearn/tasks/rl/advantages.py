"""Advantage estimation for batches of episodes with a leading task dimension.

* :func:`linear_baseline`: the linear feature baseline of Duan, Chen, Houthooft, Schulman & Abbeel
  (2016), "Benchmarking Deep Reinforcement Learning for Continuous Control", fitted per task by
  ridge regression of the discounted return-to-go on ``[obs, obs^2, t, t^2, t^3, 1]``
  (``t`` = step / 100), as MAML's experiments use it;
* :func:`gae`: generalised advantage estimation of Schulman, Moritz, Levine, Jordan & Abbeel
  (2016), "High-Dimensional Continuous Control Using Generalized Advantage Estimation".

Shapes: ``[tasks, episodes, horizon]`` for rewards and masks (1 while an episode is alive),
``[tasks, episodes, horizon, obs_dim]`` for observations.
"""
from __future__ import annotations

import torch
from torch import Tensor


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """The discounted return-to-go at every step (zero after an episode ends)."""
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for h in range(rewards.shape[-1] - 1, -1, -1):
        running = (rewards[..., h] + gamma * running) * mask[..., h]
        out[..., h] = running
    return out


def baseline_features(obs: Tensor, mask: Tensor) -> Tensor:
    """Duan et al.'s features of each step: ``[obs, obs^2, t, t^2, t^3, 1]``, zero where masked."""
    o = obs.clamp(-10, 10)
    t = (torch.arange(obs.shape[-2], dtype=obs.dtype, device=obs.device) / 100.0).expand(obs.shape[:-1])
    feats = torch.cat([o, o * o, t.unsqueeze(-1), (t * t).unsqueeze(-1), (t ** 3).unsqueeze(-1),
                       torch.ones_like(t).unsqueeze(-1)], dim=-1)
    return feats * mask.unsqueeze(-1)


def linear_baseline(obs: Tensor, returns: Tensor, mask: Tensor, reg: float = 1e-5) -> Tensor:
    """Values of every step from a ridge regression fitted per task (leading dimension) on that
    task's own steps."""
    feats = baseline_features(obs.double(), mask.double())
    x = feats.flatten(1, 2)                    # [tasks, episodes * horizon, features]
    y = (returns.double() * mask.double()).flatten(1, 2)
    xtx = x.transpose(1, 2) @ x
    xty = x.transpose(1, 2) @ y.unsqueeze(-1)
    eye = torch.eye(xtx.shape[-1], dtype=xtx.dtype)
    # features that are always zero (an ant's contact forces in short episodes) leave the system
    # singular but for the ridge term: an SVD-based least-squares solve (gelsd) is exact there too
    coef = torch.linalg.lstsq(xtx + reg * eye, xty, driver="gelsd").solution
    if not bool(torch.isfinite(coef).all()):
        coef = torch.zeros_like(coef)    # no baseline rather than a non-finite one
    values = (feats @ coef.unsqueeze(1)).squeeze(-1)
    return values.to(returns.dtype) * mask


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantages: ``sum_k (gamma lam)^k delta_{t+k}`` with
    ``delta_t = r_t + gamma V_{t+1} - V_t`` (``V`` is zero after the episode ends)."""
    nxt = torch.cat([values[..., 1:] * mask[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
    deltas = (rewards + gamma * nxt - values) * mask
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for h in range(rewards.shape[-1] - 1, -1, -1):
        running = (deltas[..., h] + gamma * lam * running) * mask[..., h]
        out[..., h] = running
    return out


def normalize(adv: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Advantages standardised per task over its live steps (leading dimension = tasks)."""
    dims = tuple(range(1, adv.dim()))
    n = mask.sum(dims, keepdim=True).clamp_min(1)
    mean = (adv * mask).sum(dims, keepdim=True) / n
    var = ((adv - mean).pow(2) * mask).sum(dims, keepdim=True) / n
    return (adv - mean) / (var.sqrt() + eps) * mask
