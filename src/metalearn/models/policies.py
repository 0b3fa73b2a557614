"""Stochastic policies for reinforcement learning, as plain modules over observations.

A policy's forward maps observations ``[..., obs_dim]`` to the parameters of its action
distribution, and its :class:`Distribution` reads them: so a policy is an ``nn.Module`` like any
other and the functional core (``functional_call``, second-order inner steps, ``vmap`` over tasks)
works on it unchanged.

* :class:`GaussianPolicy`: an MLP for the mean (2 x 100 tanh units in Finn et al. 2017, section
  5.3) and a learned, state-independent log standard deviation; forward gives ``[mean, log_std]``
  concatenated on the last dimension.
* :class:`CategoricalPolicy`: an MLP giving the logits of discrete actions.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .mlp import mlp


class Distribution:
    """How a policy's outputs define a distribution over actions (no parameters of its own)."""

    name = "distribution"
    action_space = "continuous"

    def log_prob(self, out: Tensor, actions: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, out: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def mode(self, out: Tensor) -> Tensor:
        """The most likely action (the deterministic policy a report draws)."""
        raise NotImplementedError

    def kl(self, old: Tensor, new: Tensor) -> Tensor:
        """KL(old || new) per state (no action dimension)."""
        raise NotImplementedError

    def entropy(self, out: Tensor) -> Tensor:
        raise NotImplementedError


class DiagGaussian(Distribution):
    """``N(mean, diag(exp(log_std)^2))`` from ``out = [mean, log_std]``."""

    name = "gaussian"
    action_space = "continuous"

    @staticmethod
    def split(out: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std

    def log_prob(self, out: Tensor, actions: Tensor) -> Tensor:
        mean, log_std = self.split(out)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def sample(self, out: Tensor, generator: torch.Generator | None) -> Tensor:
        mean, log_std = self.split(out)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + torch.exp(log_std) * noise

    def mode(self, out: Tensor) -> Tensor:
        return self.split(out)[0]

    def kl(self, old: Tensor, new: Tensor) -> Tensor:
        m0, s0 = self.split(old)
        m1, s1 = self.split(new)
        return (s1 - s0 + (torch.exp(2 * s0) + (m0 - m1).pow(2)) / (2 * torch.exp(2 * s1)) - 0.5).sum(-1)

    def entropy(self, out: Tensor) -> Tensor:
        return (self.split(out)[1] + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)


class Categorical(Distribution):
    """A categorical distribution over ``out``'s last dimension (logits)."""

    name = "categorical"
    action_space = "discrete"

    def log_prob(self, out: Tensor, actions: Tensor) -> Tensor:
        logp = torch.log_softmax(out, -1)
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def sample(self, out: Tensor, generator: torch.Generator | None) -> Tensor:
        probs = torch.softmax(out, -1)
        flat = probs.reshape(-1, probs.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])

    def mode(self, out: Tensor) -> Tensor:
        return out.argmax(-1)

    def kl(self, old: Tensor, new: Tensor) -> Tensor:
        p0 = torch.log_softmax(old, -1)
        return (p0.exp() * (p0 - torch.log_softmax(new, -1))).sum(-1)

    def entropy(self, out: Tensor) -> Tensor:
        logp = torch.log_softmax(out, -1)
        return -(logp.exp() * logp).sum(-1)


DISTRIBUTIONS: dict[str, Distribution] = {"continuous": DiagGaussian(), "discrete": Categorical()}


class GaussianPolicy(nn.Module):
    """Gaussian policy: MLP mean, learned state-independent log std (Finn et al. 2017; Duan et al. 2016)."""

    distribution = DISTRIBUTIONS["continuous"]

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int] = (100, 100),
                 activation: str = "tanh", init_std: float = 1.0) -> None:
        super().__init__()
        self.mean = mlp(obs_dim, hidden, action_dim, activation)
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))

    def forward(self, obs: Tensor) -> Tensor:
        mean = self.mean(obs)
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)


class CategoricalPolicy(nn.Module):
    """Categorical policy over ``num_actions`` discrete actions: an MLP giving the logits."""

    distribution = DISTRIBUTIONS["discrete"]

    def __init__(self, obs_dim: int, num_actions: int, hidden: Sequence[int] = (100, 100),
                 activation: str = "tanh") -> None:
        super().__init__()
        self.logits = mlp(obs_dim, hidden, num_actions, activation)

    def forward(self, obs: Tensor) -> Tensor:
        return self.logits(obs)
