"""The learned optimizer of Andrychowicz et al. (2016), "Learning to learn by gradient descent by
gradient descent", NeurIPS: a coordinatewise two-layer LSTM (20 hidden units per layer) whose
weights are shared across all coordinates of the optimizee, each coordinate with its own hidden
state, mapping a preprocessed gradient to a parameter update.

Gradient preprocessing (the paper's appendix A): a gradient ``g`` becomes the pair
``(log|g| / p, sign g)`` when ``|g| >= exp(-p)`` and ``(-1, exp(p) g)`` otherwise. We use the
paper's ``p = 10`` (DeepMind's released code uses 5) and scale the LSTM's output by 0.1 so that
the first updates are small steps; both are constructor arguments.

The rule is an inner-loop rule of the functional core (``init``/``update``), so the same network
drives the meta-training unrolls, the evaluation, an inner loop elsewhere in the library, and the
``torch.optim.Optimizer`` wrapper.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..functional import InnerRule, ParamDict


def preprocess(g: Tensor, p: float = 10.0) -> Tensor:
    """``[N] -> [N, 2]`` log-magnitude and sign encoding of gradients (Andrychowicz et al., A)."""
    big = g.abs() >= math.exp(-p)
    first = torch.where(big, g.abs().clamp_min(1e-38).log() / p, torch.full_like(g, -1.0))
    second = torch.where(big, torch.sign(g), g * math.exp(p))
    return torch.stack([first, second], dim=-1)


class LSTMOptimizerNet(nn.Module):
    """Coordinatewise 2-layer LSTM: ``step(grads [N], state) -> (updates [N], state)``."""

    def __init__(self, hidden: int = 20, preprocess_p: float = 10.0, output_scale: float = 0.1) -> None:
        super().__init__()
        self.hidden, self.preprocess_p, self.output_scale = hidden, preprocess_p, output_scale
        self.cell1 = nn.LSTMCell(2, hidden)
        self.cell2 = nn.LSTMCell(hidden, hidden)
        self.out = nn.Linear(hidden, 1)
        with torch.no_grad():  # start close to a small, well-behaved step
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def initial_state(self, n: int, like: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        z = torch.zeros(n, self.hidden, dtype=like.dtype, device=like.device)
        return z, z, z, z

    def step(self, g: Tensor, state: tuple[Tensor, Tensor, Tensor, Tensor]
             ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor, Tensor]]:
        h1, c1, h2, c2 = state
        x = preprocess(g, self.preprocess_p)
        h1, c1 = self.cell1(x, (h1, c1))
        h2, c2 = self.cell2(h1, (h2, c2))
        return self.output_scale * self.out(h2).squeeze(-1), (h1, c1, h2, c2)


def lstm_rule(net: LSTMOptimizerNet) -> InnerRule:
    """The learned optimizer as an inner-loop rule over parameter dicts (all coordinates of all
    tensors form one batch of LSTM rows)."""

    def init(params: ParamDict) -> tuple[Tensor, ...]:
        first = next(iter(params.values()))
        return net.initial_state(sum(p.numel() for p in params.values()), first)

    def update(grads: ParamDict, state: tuple[Tensor, ...], params: ParamDict) -> tuple[ParamDict, tuple[Tensor, ...]]:
        flat = torch.cat([grads[k].reshape(-1) for k in params])
        delta, state = net.step(flat, state)  # type: ignore[arg-type]
        out, i = {}, 0
        for k, p in params.items():
            n = p.numel()
            out[k] = p + delta[i:i + n].view_as(p)
            i += n
        return out, state

    return InnerRule(init, update, name="lstm")
