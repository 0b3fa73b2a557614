"""Inner-loop update rules in the optax style: a pair of pure functions ``init`` and ``update``.

``init(params) -> state`` and ``update(grads, state, params) -> (new_params, new_state)``.
A rule never mutates its inputs, so the same rule runs inside a per-task loop, under ``vmap``,
and inside a second-order meta-gradient. Plain SGD gives MAML (Finn et al. 2017); rules with
learned rates (Meta-SGD, MAML++) and learned optimizers plug in the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Tuple

from .params import ParamDict

InitFn = Callable[[ParamDict], Any]
UpdateFn = Callable[[ParamDict, Any, ParamDict], Tuple[ParamDict, Any]]


@dataclass(frozen=True)
class InnerRule:
    """An inner-loop update rule: ``init(params) -> state``, ``update(grads, state, params)``."""

    init: InitFn
    update: UpdateFn
    name: str = "rule"


def sgd(lr: float) -> InnerRule:
    """Plain gradient descent with a fixed step size, the inner loop of MAML (Finn et al. 2017)."""
    if not lr > 0:
        raise ValueError(f"the inner learning rate must be positive, got {lr}")

    def init(params: ParamDict) -> None:
        return None

    def update(grads: ParamDict, state: None, params: ParamDict) -> tuple[ParamDict, None]:
        return {k: p - lr * grads[k] for k, p in params.items()}, state

    return InnerRule(init, update, name=f"sgd(lr={lr})")
