"""The outer step of meta-reinforcement learning as a part: what an RL meta-learner is configured
with, rather than a subclass overriding its methods. A part gives one task's outer objective (from
the pre-update parameters, the adapted ones and the task's support and query episodes) and the
optimizer that takes the outer step (:class:`~metalearn.algorithms.base.OuterPart`); a trust
region also gives the constraint its step bounds.

* :class:`TrustRegion`: the surrogate of the query episodes at the adapted parameters, and a TRPO
  step (conjugate gradient on the KL's Fisher-vector products, then a line search within
  ``max_kl``), as in MAML's RL experiments (Finn et al., 2017; Schulman et al., 2015).
* :class:`Proximal`: ProMP's clipped surrogate with a KL penalty on the pre-update policy and
  ``outer_steps`` Adam steps on the same episodes (Rothfuss et al., ICLR 2019).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from ...functional import ParamDict
from .trpo import RepeatedAdam, TRPOStep

Forward = Callable[[ParamDict, Any], Any]


@dataclass(frozen=True)
class TrustRegion:
    """The policy-gradient surrogate of the query episodes, maximised by a TRPO step."""

    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 1e-5
    ls_steps: int = 15
    ls_backtrack: float = 0.8

    def objective(self, forward: Forward, task_loss: Any, params: ParamDict, fast: ParamDict, support: Any,
                  query: Any) -> Tensor:
        return cast(Tensor, task_loss.loss(forward, fast, query))

    def constraint(self, forward: Forward, task_loss: Any, params: ParamDict, fast: ParamDict, support: Any,
                   query: Any) -> Tensor:
        """The mean KL of the post-update policy from the one that collected the query episodes."""
        return cast(Tensor, task_loss.kl(forward, fast, query))

    def optimizer(self, params: Sequence[Tensor], lr: float) -> torch.optim.Optimizer:
        return TRPOStep(params, self.max_kl, self.cg_iters, self.cg_damping, self.ls_steps, self.ls_backtrack)


@dataclass(frozen=True)
class Proximal:
    """ProMP's outer objective: the clipped likelihood-ratio surrogate of the query episodes at the
    adapted parameters (``clip_eps``), plus ``kl_penalty`` times the KL between the pre-update policy
    that collected the support episodes and the current one; ``outer_steps`` Adam steps of ``lr``."""

    clip_eps: float = 0.3
    kl_penalty: float = 5e-4
    outer_steps: int = 5

    def objective(self, forward: Forward, task_loss: Any, params: ParamDict, fast: ParamDict, support: Any,
                  query: Any) -> Tensor:
        loss = task_loss
        out = loss.clipped_loss(forward, fast, query, self.clip_eps)
        if support is not None and self.kl_penalty:
            out = out + self.kl_penalty * loss.kl(forward, params, support)
        return cast(Tensor, out)

    def optimizer(self, params: Sequence[Tensor], lr: float) -> torch.optim.Optimizer:
        return RepeatedAdam(params, lr=lr, repeats=self.outer_steps)
