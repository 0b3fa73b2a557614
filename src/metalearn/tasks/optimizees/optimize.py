"""Running an update rule (a hand-designed optimizer or a learned one) on a batch of optimizee
problems, without meta-gradients: how learned optimizers are evaluated and compared
(Andrychowicz et al., 2016)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ...functional import InnerRule, ParamDict, detached
from ...protocols import OptimizeeFamily
from .problems import OptimizeeBatch


def optimize(family: OptimizeeFamily, batch: OptimizeeBatch, rule: InnerRule, steps: int,
             record: Callable[[ParamDict, int], Tensor] | None = None) -> tuple[ParamDict, Tensor]:
    """Run ``rule`` for ``steps`` steps on every problem of ``batch`` (no meta-gradient).

    Returns the final parameters and ``record(params, t)`` (default: the step's loss) before each
    step and after the last, shape ``[B, steps + 1]``."""
    params = detached(batch.params)
    state = rule.init(params)
    curve = []
    for t in range(steps + 1):
        leaf = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        with torch.enable_grad():
            loss = family.losses(leaf, batch.data, t)
            grads = dict(zip(leaf, torch.autograd.grad(loss.sum(), list(leaf.values()))))
        curve.append((loss if record is None else record(leaf, t)).detach())
        if t == steps:
            break
        with torch.no_grad():
            params, state = rule.update(grads, state, {k: v.detach() for k, v in leaf.items()})
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) and all(
                torch.is_tensor(s) for s in state) else state
    return params, torch.stack(curve, dim=1)


def no_grad_rule(rule: InnerRule) -> InnerRule:
    """``rule`` with its update run without autograd (evaluating an optimizer, not meta-training it)."""
    def update(g: ParamDict, s: Any, p: ParamDict) -> tuple[ParamDict, Any]:
        with torch.no_grad():
            return rule.update(g, s, p)
    return InnerRule(rule.init, update, name=rule.name)
