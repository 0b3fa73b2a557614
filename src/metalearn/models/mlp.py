"""A multilayer perceptron, the regression network of the MAML paper (1-40-40-1 with ReLU)."""
from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import Tensor, nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "relu") -> nn.Sequential:
    """``in_dim -> hidden[0] -> ... -> out_dim`` with ``activation`` between linear layers."""
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    if activation not in acts:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(acts)}")
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), acts[activation]()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class WideMLP(nn.Module):
    """An MLP plus a linear map of the raw inputs ("wide and deep", Cheng et al. 2016): the output
    is ``head.deep(body(x)) + head.wide(x)``. On tables whose targets are nearly linear in the
    inputs (an autoregressive forecast) the wide part carries the linear model, and adapting the
    ``head`` (ANIL: ``algo.head=head``) adapts a linear model over the raw and the learned features."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "relu") -> None:
        super().__init__()
        if not hidden:
            raise ValueError("a wide MLP needs at least one hidden layer; set model.hidden")
        deep = mlp(in_dim, hidden, out_dim, activation)
        self.body = nn.Sequential(*list(deep)[:-1])
        last = deep[-1]
        assert isinstance(last, nn.Linear)
        self.head = _WideHead(last, nn.Linear(in_dim, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x), x)


class _WideHead(nn.Module):
    def __init__(self, deep: nn.Linear, wide: nn.Linear) -> None:
        super().__init__()
        self.deep, self.wide = deep, wide
        nn.init.zeros_(self.wide.weight)   # starts as the plain MLP
        nn.init.zeros_(self.wide.bias)

    def forward(self, features: Tensor, x: Tensor) -> Tensor:
        return self.deep(features) + self.wide(x)
