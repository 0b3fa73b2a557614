"""A multilayer perceptron, the regression network of the MAML paper (1-40-40-1 with ReLU)."""
from __future__ import annotations

from typing import Sequence

from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "relu") -> nn.Sequential:
    """``in_dim -> hidden[0] -> ... -> out_dim`` with ``activation`` between linear layers."""
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    if activation not in acts:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(acts)}")
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), acts[activation]()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)
