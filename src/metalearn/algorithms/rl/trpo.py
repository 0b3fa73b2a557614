"""Outer steps for meta-reinforcement learning, used by the trainer in place of Adam.

* :class:`TRPOStep`: the trust-region step of Schulman, Levine, Moritz, Jordan & Abbeel (2015),
  "Trust Region Policy Optimization": the natural-gradient direction by conjugate gradient on
  Fisher-vector products (Hessian-vector products of the mean KL, through the inner adaptation
  step when second order), scaled to the KL bound, then a backtracking line search that accepts
  the first step that lowers the surrogate loss with a KL within the bound (else no step).
* :class:`RepeatedAdam`: several Adam steps on the same episodes per meta-iteration, ProMP's outer
  loop (Rothfuss et al. 2019).

Both declare ``uses_closure``: the trainer passes the algorithm's closure, which re-evaluates the
meta-loss on the episodes the meta-step collected (and, for TRPO, their KL: ``closure.kl()``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from ...errors import MetalearnError


def conjugate_gradient(mvp: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, tol: float = 1e-10) -> Tensor:
    """Solve ``A x = b`` for a symmetric positive-definite ``A`` given as ``mvp(v) = A v``."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iters):
        if float(rr) < tol:
            break
        ap = mvp(p)
        alpha = rr / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def _flat(tensors: Iterable[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


class TRPOStep(torch.optim.Optimizer):
    """The TRPO outer step (see the module docstring). ``closure.kl()`` gives the mean KL from the
    policy that collected the episodes (differentiable), ``closure.values()`` the surrogate loss and
    that KL as numbers.

    Args:
        max_kl: the trust region's radius (0.01 in MAML's experiments).
        cg_iters, cg_damping: conjugate-gradient iterations, and the damping added to the
            Fisher-vector product.
        ls_steps, ls_backtrack: line-search tries and the shrink factor between them.
    """

    uses_closure = True

    def __init__(self, params: Iterable[Tensor], max_kl: float = 0.01, cg_iters: int = 10,
                 cg_damping: float = 1e-5, ls_steps: int = 15, ls_backtrack: float = 0.8) -> None:
        super().__init__(params, dict(lr=max_kl))
        self.max_kl, self.cg_iters, self.cg_damping = max_kl, cg_iters, cg_damping
        self.ls_steps, self.ls_backtrack = ls_steps, ls_backtrack
        self.last: dict[str, float] = {}   # the last step's KL, improvement and line-search step

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        if closure is None or not hasattr(closure, "kl"):
            raise MetalearnError("the TRPO step needs the algorithm's closure (with .kl()); train it through the "
                                 "metalearn trainer")
        params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        g = _flat(grads)
        self.last = {"kl": 0.0, "improvement": 0.0, "step_size": 0.0}
        if float(g.abs().max()) == 0.0:   # nothing to follow (e.g. no episode was rewarded): no step
            return
        with torch.enable_grad():
            kl = closure.kl()
            kl_grads = torch.autograd.grad(kl, params, create_graph=True, allow_unused=True)
        kl_grads = tuple(torch.zeros_like(p) if k is None else k for p, k in zip(params, kl_grads))
        flat_kl_grad = _flat(kl_grads)

        def fvp(v: Tensor) -> Tensor:
            hv = torch.autograd.grad(flat_kl_grad @ v, params, retain_graph=True, allow_unused=True)
            return _flat(torch.zeros_like(p) if h is None else h for p, h in zip(params, hv)) + self.cg_damping * v

        direction = conjugate_gradient(fvp, -g, self.cg_iters)
        shs = 0.5 * float(direction @ fvp(direction))
        if not math.isfinite(shs) or shs <= 0:
            raise MetalearnError(f"the TRPO step's curvature is {shs} (a non-finite or non-positive KL Hessian: the "
                                 f"policy diverged); lower algo.inner_lr or algo.max_kl and resume from the last "
                                 f"checkpoint")
        step = direction * math.sqrt(self.max_kl / shs)
        start = [p.detach().clone() for p in params]
        old = closure.values()[0]
        size = 1.0
        for _ in range(self.ls_steps):
            self._assign(params, start, step * size)
            new, kl_new = closure.values()
            if new < old and kl_new <= self.max_kl:   # (False for a non-finite loss or KL)
                self.last = {"kl": kl_new, "improvement": old - new, "step_size": size}
                return
            size *= self.ls_backtrack
        self._assign(params, start, None)

    @staticmethod
    def _assign(params: list[Tensor], start: list[Tensor], delta: Tensor | None) -> None:
        with torch.no_grad():
            offset = 0
            for p, s in zip(params, start):
                n = p.numel()
                p.copy_(s if delta is None else s + delta[offset:offset + n].view_as(p))
                offset += n


class RepeatedAdam(torch.optim.Adam):
    """``repeats`` Adam steps per meta-iteration on the same episodes: the first on the gradient the
    meta-step computed, each further one on the gradient of ``closure()`` (ProMP's outer loop)."""

    uses_closure = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, repeats: int = 5) -> None:
        super().__init__(params, lr=lr)
        self.repeats = repeats

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        super().step()
        for _ in range(self.repeats - 1):
            if closure is None:
                break
            self.zero_grad(set_to_none=True)
            with torch.enable_grad():
                loss = closure()
                loss.backward()
            super().step()
