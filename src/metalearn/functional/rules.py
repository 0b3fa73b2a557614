"""Inner-loop update rules, composed from gradient transformations in the optax style.

A :class:`Transform` is a pair of pure functions ``init(params) -> state`` and
``update(updates, state, params) -> (updates, state)``: it turns gradients into updates (scales
them, accumulates momentum, clips them, applies learned rates). :func:`chain` composes transforms
in order into an :class:`InnerRule`, whose ``update(grads, state, params)`` returns the new
parameters ``params + updates`` and the new state. Nothing mutates its inputs, so the same rule runs
inside a per-task loop, under ``vmap``, and inside a second-order meta-gradient.

The rules of the library are chains: MAML's SGD (Finn et al. 2017) is ``chain(scale(-lr))``;
Meta-SGD's per-coordinate learned rates (Li et al. 2017) and MAML++'s per-layer per-step rates
(Antoniou et al. 2019) are ``chain(scale_by_learned(rates), scale(-1))``; the transfer baseline's
fine-tuning is SGD with momentum, ``chain(trace(0.9), scale(-lr))``; Reptile's inner Adam is
``chain(scale_by_adam(..., lr), scale(-1))``. Each gives the numbers of the hand-written rule it
replaced to the last bit (``p - lr * g`` and ``p + (-lr) * g`` round alike). A rule with a learned
state of its own (the LSTM optimizer) is an :class:`InnerRule` written directly.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch

from .params import ParamDict

InitFn = Callable[[ParamDict], Any]
UpdateFn = Callable[[ParamDict, Any, ParamDict], tuple[ParamDict, Any]]


@dataclass(frozen=True)
class InnerRule:
    """An inner-loop update rule: ``init(params) -> state``, ``update(grads, state, params)``
    returning ``(new_params, new_state)``."""

    init: InitFn
    update: UpdateFn
    name: str = "rule"
    # the same rule with its learned tensors detached (None: the rule has none)
    frozen: Callable[[], InnerRule] | None = None


@dataclass(frozen=True)
class Transform:
    """A gradient transformation: ``init(params) -> state``, ``update(updates, state, params)``
    returning ``(updates, new_state)``."""

    init: InitFn
    update: UpdateFn
    name: str = "transform"
    frozen: Callable[[], Transform] | None = None   # with learned tensors detached


def chain(*transforms: Transform, name: str | None = None) -> InnerRule:
    """The rule that applies ``transforms`` in order to the gradients and adds the result to the
    parameters (the composition of optax and TorchOpt, on parameter dicts).

    Args:
        *transforms: gradient transforms, applied first to last (e.g. :func:`trace`, then :func:`scale`).
        name: the rule's label in logs (default: the transforms' names joined by arrows).

    Returns:
        An :class:`InnerRule`: ``init(params)`` gives its state, ``update(grads, state, params)`` the
        new parameters and state. It is differentiable, so it can run inside a second-order inner loop.

    Raises:
        ValueError: without transforms.

    Example:
        SGD with heavy-ball momentum, two steps on a constant gradient:

        >>> import torch
        >>> from metalearn.functional import chain, scale, trace
        >>> rule = chain(trace(0.9), scale(-0.1))
        >>> params = {"w": torch.tensor([1.0])}
        >>> state = rule.init(params)
        >>> params, state = rule.update({"w": torch.tensor([2.0])}, state, params)
        >>> params["w"]
        tensor([0.8000])
        >>> params, state = rule.update({"w": torch.tensor([2.0])}, state, params)
        >>> params["w"]   # the trace is now 0.9 * 2 + 2 = 3.8
        tensor([0.4200])
    """
    if not transforms:
        raise ValueError("chain needs at least one transform")

    def init(params: ParamDict) -> tuple[Any, ...]:
        return tuple(t.init(params) for t in transforms)

    def update(grads: ParamDict, state: tuple[Any, ...], params: ParamDict) -> tuple[ParamDict, tuple[Any, ...]]:
        updates, new_state = grads, []
        for t, s in zip(transforms, state):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return {k: p + updates[k] for k, p in params.items()}, tuple(new_state)

    label = name or " -> ".join(t.name for t in transforms)
    frozen = None
    if any(t.frozen is not None for t in transforms):
        frozen = lambda: chain(*(t.frozen() if t.frozen is not None else t for t in transforms),  # noqa: E731
                               name=label)
    return InnerRule(init, update, name=label, frozen=frozen)


def _stateless(fn: Callable[[ParamDict], ParamDict], name: str) -> Transform:
    return Transform(lambda params: None, lambda u, s, p: (fn(u), s), name=name)


def scale(factor: float) -> Transform:
    """Multiply the updates by ``factor`` (``scale(-lr)`` ends a descent rule)."""
    return _stateless(lambda u: {k: factor * v for k, v in u.items()}, f"scale({factor:g})")


def trace(decay: float) -> Transform:
    """Heavy-ball momentum: ``m <- decay * m + u``, emitting ``m`` (PyTorch's SGD momentum)."""

    def init(params: ParamDict) -> ParamDict:
        return {k: torch.zeros_like(p) for k, p in params.items()}

    def update(u: ParamDict, m: ParamDict, params: ParamDict) -> tuple[ParamDict, ParamDict]:
        m = {k: decay * m[k] + u[k] for k in u}
        return m, m

    return Transform(init, update, name=f"trace({decay:g})")


def nesterov_trace(decay: float) -> Transform:
    """Nesterov momentum as PyTorch writes it: ``m <- decay * m + u``, emitting ``u + decay * m``."""

    def init(params: ParamDict) -> ParamDict:
        return {k: torch.zeros_like(p) for k, p in params.items()}

    def update(u: ParamDict, m: ParamDict, params: ParamDict) -> tuple[ParamDict, ParamDict]:
        m = {k: decay * m[k] + u[k] for k in u}
        return {k: u[k] + decay * m[k] for k in u}, m

    return Transform(init, update, name=f"nesterov_trace({decay:g})")


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, lr: float = 1.0) -> Transform:
    """Adam's normalisation (Kingma & Ba 2015): ``lr`` times the bias-corrected first moment over
    the square root of the bias-corrected second moment (``lr`` inside, in PyTorch's order of
    operations, so that ``adam`` gives the same numbers to the last bit)."""

    def init(params: ParamDict) -> tuple[int, ParamDict, ParamDict]:
        zeros = {k: p.detach() * 0 for k, p in params.items()}
        return 0, zeros, dict(zeros)

    def update(u: ParamDict, state: tuple[int, ParamDict, ParamDict], params: ParamDict
               ) -> tuple[ParamDict, tuple[int, ParamDict, ParamDict]]:
        t, m, v = state
        t += 1
        m = {k: b1 * m[k] + (1 - b1) * u[k] for k in u}
        v = {k: b2 * v[k] + (1 - b2) * u[k] ** 2 for k in u}
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        return {k: lr * (m[k] / c1) / ((v[k] / c2).sqrt() + eps) for k in u}, (t, m, v)

    return Transform(init, update, name="scale_by_adam")


def scale_by_rms(decay: float = 0.99, eps: float = 1e-8, lr: float = 1.0) -> Transform:
    """RMSprop's normalisation (Tieleman & Hinton 2012): ``lr * u / (sqrt(mean of u^2) + eps)``."""

    def init(params: ParamDict) -> ParamDict:
        return {k: p.detach() * 0 for k, p in params.items()}

    def update(u: ParamDict, sq: ParamDict, params: ParamDict) -> tuple[ParamDict, ParamDict]:
        sq = {k: decay * sq[k] + (1 - decay) * u[k] ** 2 for k in u}
        return {k: lr * u[k] / (sq[k].sqrt() + eps) for k in u}, sq

    return Transform(init, update, name="scale_by_rms")


def scale_by_learned(rates: ParamDict, per_step: bool = False) -> Transform:
    """Multiply by learned rates (meta-parameters, differentiable). ``per_step=False``:
    ``rates[name]`` has the parameter's shape, a rate per coordinate (Meta-SGD). ``per_step=True``:
    ``rates[name]`` holds one rate per inner step for that tensor (MAML++'s LSLR); steps beyond its
    length reuse the last rate. The state counts the steps."""

    def update(u: ParamDict, step: int, params: ParamDict) -> tuple[ParamDict, int]:
        if per_step:
            return {k: rates[k][min(step, rates[k].shape[0] - 1)] * u[k] for k in u}, step + 1
        return {k: rates[k] * u[k] for k in u}, step + 1

    return Transform(lambda params: 0, update, name="scale_by_learned",
                     frozen=lambda: scale_by_learned({k: v.detach() for k, v in rates.items()}, per_step))


def clip_by_global_norm(max_norm: float) -> Transform:
    """Scale the updates down so that their global L2 norm is at most ``max_norm`` (no branch on
    a tensor's value, so it runs under ``vmap``)."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")

    def clip(u: ParamDict) -> ParamDict:
        norm = torch.sqrt(cast(torch.Tensor, sum((v * v).sum() for v in u.values())))
        factor = torch.clamp(max_norm / (norm + 1e-12), max=1.0)
        return {k: v * factor for k, v in u.items()}

    return _stateless(clip, f"clip_by_global_norm({max_norm:g})")


def _positive(lr: float) -> None:
    if not lr > 0:
        raise ValueError(f"the inner learning rate must be positive, got {lr}")


def sgd(lr: float) -> InnerRule:
    """Plain gradient descent with a fixed step size, the inner loop of MAML (Finn et al. 2017)."""
    _positive(lr)
    return chain(scale(-lr), name=f"sgd(lr={lr})")


def momentum_sgd(lr: float, momentum: float = 0.9) -> InnerRule:
    """SGD with heavy-ball momentum, as PyTorch's ``SGD(momentum=...)``."""
    _positive(lr)
    return chain(trace(momentum), scale(-lr), name=f"momentum_sgd(lr={lr}, momentum={momentum})")


def per_parameter_sgd(lrs: ParamDict, per_step: bool = False) -> InnerRule:
    """SGD with learned step sizes: Meta-SGD (Li et al. 2017) or, ``per_step``, MAML++'s per-layer
    per-step rates (Antoniou et al. 2019); see :func:`scale_by_learned`."""
    return chain(scale_by_learned(lrs, per_step), scale(-1.0),
                 name="per_step_sgd" if per_step else "meta_sgd")


def adam(lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> InnerRule:
    """Adam (Kingma & Ba 2015) as a pure inner-loop rule, e.g. for Reptile's inner loop."""
    _positive(lr)
    return chain(scale_by_adam(betas[0], betas[1], eps, lr), scale(-1.0), name=f"adam(lr={lr})")


def nesterov(lr: float, momentum: float = 0.9) -> InnerRule:
    """SGD with Nesterov momentum (Sutskever et al. 2013), as PyTorch writes it."""
    return chain(nesterov_trace(momentum), scale(-lr), name=f"nesterov(lr={lr})")


def rmsprop(lr: float, alpha: float = 0.99, eps: float = 1e-8) -> InnerRule:
    """RMSprop (Tieleman & Hinton 2012), as PyTorch writes it."""
    return chain(scale_by_rms(alpha, eps, lr), scale(-1.0), name=f"rmsprop(lr={lr})")


def detached_rule(rule: InnerRule) -> InnerRule:
    """The same rule with its learned hyper-parameters cut from the graph (for test-time
    adaptation, where no meta-gradient is formed). Rules without learned tensors are unchanged."""
    return rule if rule.frozen is None else rule.frozen()
