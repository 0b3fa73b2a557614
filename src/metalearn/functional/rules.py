"""Inner-loop update rules in the optax style: a pair of pure functions ``init`` and ``update``.

``init(params) -> state`` and ``update(grads, state, params) -> (new_params, new_state)``.
A rule never mutates its inputs, so the same rule runs inside a per-task loop, under ``vmap``,
and inside a second-order meta-gradient. Plain SGD gives MAML (Finn et al. 2017); rules with
learned rates (Meta-SGD, MAML++) and learned optimizers plug in the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

from .params import ParamDict

InitFn = Callable[[ParamDict], Any]
UpdateFn = Callable[[ParamDict, Any, ParamDict], Tuple[ParamDict, Any]]


@dataclass(frozen=True)
class InnerRule:
    """An inner-loop update rule: ``init(params) -> state``, ``update(grads, state, params)``."""

    init: InitFn
    update: UpdateFn
    name: str = "rule"
    # the same rule with its learned tensors detached (None: the rule has none)
    frozen: Optional[Callable[[], "InnerRule"]] = None


def sgd(lr: float) -> InnerRule:
    """Plain gradient descent with a fixed step size, the inner loop of MAML (Finn et al. 2017)."""
    if not lr > 0:
        raise ValueError(f"the inner learning rate must be positive, got {lr}")

    def init(params: ParamDict) -> None:
        return None

    def update(grads: ParamDict, state: None, params: ParamDict) -> tuple[ParamDict, None]:
        return {k: p - lr * grads[k] for k, p in params.items()}, state

    return InnerRule(init, update, name=f"sgd(lr={lr})")


def per_parameter_sgd(lrs: ParamDict, per_step: bool = False) -> InnerRule:
    """SGD with learned step sizes (meta-parameters, differentiable).

    ``per_step=False``: ``lrs[name]`` has the shape of the parameter, one rate per coordinate
    (Meta-SGD, Li et al. 2017). ``per_step=True``: ``lrs[name]`` is a vector with one rate per
    inner step for that parameter tensor (LSLR of MAML++, Antoniou et al. 2019); steps beyond its
    length reuse the last rate.
    """

    def init(params: ParamDict) -> int:
        return 0

    def update(grads: ParamDict, step: int, params: ParamDict) -> tuple[ParamDict, int]:
        if per_step:
            out = {k: p - lrs[k][min(step, lrs[k].shape[0] - 1)] * grads[k] for k, p in params.items()}
        else:
            out = {k: p - lrs[k] * grads[k] for k, p in params.items()}
        return out, step + 1

    return InnerRule(init, update, name="per_step_sgd" if per_step else "meta_sgd",
                     frozen=lambda: per_parameter_sgd({k: v.detach() for k, v in lrs.items()}, per_step))


def adam(lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> InnerRule:
    """Adam (Kingma & Ba 2015) as a pure inner-loop rule, e.g. for Reptile's inner loop."""
    if not lr > 0:
        raise ValueError(f"the inner learning rate must be positive, got {lr}")
    b1, b2 = betas

    def init(params: ParamDict) -> tuple[int, ParamDict, ParamDict]:
        zeros = {k: p.detach() * 0 for k, p in params.items()}
        return 0, zeros, dict(zeros)

    def update(grads: ParamDict, state: tuple[int, ParamDict, ParamDict], params: ParamDict
               ) -> tuple[ParamDict, tuple[int, ParamDict, ParamDict]]:
        t, m, v = state
        t += 1
        m = {k: b1 * m[k] + (1 - b1) * grads[k] for k in params}
        v = {k: b2 * v[k] + (1 - b2) * grads[k] ** 2 for k in params}
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        new = {k: p - lr * (m[k] / c1) / ((v[k] / c2).sqrt() + eps) for k, p in params.items()}
        return new, (t, m, v)

    return InnerRule(init, update, name=f"adam(lr={lr})")


def detached_rule(rule: InnerRule) -> InnerRule:
    """The same rule with its learned hyper-parameters cut from the graph (for test-time
    adaptation, where no meta-gradient is formed). Rules without learned tensors are unchanged."""
    return rule if getattr(rule, "frozen", None) is None else rule.frozen()


def nesterov(lr: float, momentum: float = 0.9) -> InnerRule:
    """SGD with Nesterov momentum (Sutskever et al. 2013), as PyTorch writes it."""
    def init(params: ParamDict) -> ParamDict:
        return {k: p.detach() * 0 for k, p in params.items()}

    def update(grads: ParamDict, buf: ParamDict, params: ParamDict) -> tuple[ParamDict, ParamDict]:
        buf = {k: momentum * buf[k] + grads[k] for k in params}
        return {k: p - lr * (grads[k] + momentum * buf[k]) for k, p in params.items()}, buf

    return InnerRule(init, update, name=f"nesterov(lr={lr})")


def rmsprop(lr: float, alpha: float = 0.99, eps: float = 1e-8) -> InnerRule:
    """RMSprop (Tieleman & Hinton 2012), as PyTorch writes it."""
    def init(params: ParamDict) -> ParamDict:
        return {k: p.detach() * 0 for k, p in params.items()}

    def update(grads: ParamDict, sq: ParamDict, params: ParamDict) -> tuple[ParamDict, ParamDict]:
        sq = {k: alpha * sq[k] + (1 - alpha) * grads[k] ** 2 for k in params}
        return {k: p - lr * grads[k] / (sq[k].sqrt() + eps) for k, p in params.items()}, sq

    return InnerRule(init, update, name=f"rmsprop(lr={lr})")

