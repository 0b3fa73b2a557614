"""MAML-TRPO: Finn, Abbeel & Levine (2017), "Model-Agnostic Meta-Learning for Fast Adaptation of
Deep Networks", section 5.3: meta-reinforcement learning of a policy initialisation.

Per task of a meta-batch: collect K support episodes with the policy theta; one (or more) vanilla
policy-gradient step(s) on them gives theta'; collect query episodes with theta'; the meta-loss
is the surrogate of the query episodes at theta'(theta), differentiated through the inner step
(second order) or not (first order). The outer update is a TRPO step (Schulman et al. 2015) with
the mean KL of the post-update policies bounded by ``max_kl``.

It is composed, not re-implemented: :class:`~metalearn.algorithms.gradient.maml.MAML`'s inner loop
over the environment family's task loss, whose batched collection
(:class:`~metalearn.protocols.BatchedCollection`) gathers every task's episodes in one vectorised
call, with a :class:`~.outer.TrustRegion` outer part. What it adds is the inner objective's
estimator, its logged numbers (environment steps, sampling time) and the API that adapts a
policy to one task.

The inner objective is the importance-weighted surrogate, whose Hessian carries the term that
accounts for the support episodes being sampled from theta (the LVC estimator of Rothfuss et al.
2019, "ProMP"); ``estimator="naive"`` drops that term as the original MAML-RL code does, which
biases the meta-gradient (``tests/test_rl.py`` measures both against a closed form).

Also here: :class:`PolicyPretrain`, the transfer baseline of reinforcement learning: one policy
trained by TRPO on the episodes of all training tasks with no inner step, adapted at test time by
the same policy-gradient steps.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...batch import TaskTree
from ...errors import ConfigError
from ...functional import ParamDict, TaskRecord, detached, first_order_step, make_forward
from ...protocols import EnvironmentFamily, TaskFamily
from ..base import ModeSettings, OuterPart, check_choice
from ..gradient.maml import MAML
from .outer import TrustRegion

ESTIMATORS = ("lvc", "naive")


@dataclass
class MAMLTRPOSettings(ModeSettings):
    """The ``algo.*`` keys of ``maml_trpo``: MAML's and the TRPO outer step's (trust-region radius,
    conjugate-gradient iterations and damping, line search).
    """
    max_kl: float = 0.01           # TRPO: the trust region's radius (mean KL of the post-update policies; the KL of
                                   # the joint action distribution, summed over action dimensions)
    cg_iters: int = 10             # TRPO: conjugate-gradient iterations
    cg_damping: float = 1e-5       # TRPO: damping of the Fisher-vector product
    ls_steps: int = 15             # TRPO: line-search tries
    ls_backtrack: float = 0.8      # TRPO: line-search shrink factor
    estimator: str = "lvc"         # inner objective: lvc (unbiased curvature) or naive (drops the sampling term)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("estimator", self.estimator, ESTIMATORS)
        if not self.max_kl > 0:
            raise ConfigError(f"algo.max_kl must be positive, got {self.max_kl}")


class AdaptedPolicy:
    """A policy adapted to one task: ``policy(obs)`` gives the most likely action, ``policy.sample(obs,
    generator)`` a sampled one. Holds its own detached parameters; the module is never mutated."""

    def __init__(self, model: nn.Module, params: ParamDict, family: EnvironmentFamily) -> None:
        self.model, self.params, self.family = model, detached(params), family
        self._forward = make_forward(model)

    @torch.no_grad()
    def __call__(self, obs: Tensor) -> Tensor:
        action: Tensor = self.family.distribution.mode(self._forward(self.params, obs))
        return action

    @torch.no_grad()
    def sample(self, obs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        action: Tensor = self.family.distribution.sample(self._forward(self.params, obs), generator)
        return action


class MAMLTRPO(MAML):
    """MAML for policies, with batched episode collection and a TRPO outer step.

    Args:
        model: a policy (``metalearn.models.policies``) or any module giving the parameters of the
            family's action distribution.
        inner_lr: the policy-gradient step size of adaptation (0.1 in MAML's experiments).
        inner_steps: policy-gradient steps during meta-training (and the default for adaptation).
        mode: ``"second_order"`` or ``"first_order"``.
        max_kl: the trust region's radius (mean KL of the post-update policies).
        cg_iters: conjugate-gradient iterations of the TRPO step (:class:`~.trpo.TRPOStep`).
        cg_damping: damping of the Fisher-vector product.
        ls_steps: line-search tries.
        ls_backtrack: the line search's step shrink factor.
        estimator: ``"lvc"`` or ``"naive"`` (see the module docstring).
        outer: the outer step as a part (:mod:`.outer`): default a :class:`~.outer.TrustRegion` of
            the TRPO arguments; ProMP is this algorithm configured with a :class:`~.outer.Proximal` one.
    """

    name = "maml_trpo"
    task_kinds: tuple[str, ...] = ("reinforcement",)
    graphable = False
    supports_safeguard = False
    # the environment steps of a meta-step are a count: logged as a throughput (env_steps_per_s)
    rate_metrics: tuple[str, ...] = ("env_steps",)
    progress_metrics: tuple[str, ...] = ("train_return", "env_steps_per_s")

    def __init__(self, model: nn.Module, inner_lr: float = 0.1, inner_steps: int = 1, mode: str = "second_order",
                 engine: str = "auto", max_kl: float = 0.01, cg_iters: int = 10, cg_damping: float = 1e-5,
                 ls_steps: int = 15, ls_backtrack: float = 0.8, estimator: str = "lvc",
                 outer: OuterPart | None = None) -> None:
        check_choice("estimator", estimator, ESTIMATORS)
        outer = outer or TrustRegion(float(max_kl), int(cg_iters), float(cg_damping), int(ls_steps),
                                     float(ls_backtrack))
        super().__init__(model, inner_lr=inner_lr, inner_steps=inner_steps, mode=mode, engine="loop", outer=outer)
        self.outer: OuterPart = outer
        self.estimator = estimator

    @classmethod
    def from_settings(cls, model: nn.Module, family: TaskFamily, settings: Any) -> MAMLTRPO:
        if not hasattr(family, "collect"):
            raise ConfigError(f"{cls.name} trains policies on environment task families; "
                              f"{type(family).__name__} is not one")
        return cls(model, **dataclasses.asdict(settings))

    def view(self, batch: Any) -> TaskTree:
        """An environment family's task tree, its task loss with this algorithm's estimator."""
        if not isinstance(batch, TaskTree) or not hasattr(batch.task_loss, "with_estimator"):
            raise TypeError(f"{self.name} trains on the task trees of environment task families")
        return dataclasses.replace(batch, task_loss=batch.task_loss.with_estimator(self.estimator))

    def step_metrics(self, record: TaskRecord) -> dict[str, float]:
        """MAML's (the returns before and after adaptation), the environment steps of the meta-step
        (a count the trainer logs per second) and the seconds spent sampling them."""
        out = super().step_metrics(record)
        collected = record.collected or []
        episodes = [q for _, q in collected] + [s for s, _ in collected if s is not None]
        out["env_steps"] = sum(float(d["mask"].sum()) for d in episodes)
        out["sample_seconds"] = record.collect_seconds
        return out

    def adaptation_episodes(self, family: EnvironmentFamily, task: Tensor, steps: int | None = None, seed: int = 0
                            ) -> tuple[list[dict[str, Tensor]], ParamDict]:
        """The episodes of one task of ``family`` (its ``[task_dim]`` description: a goal, a
        direction...) collected before adaptation and after each of ``steps`` policy-gradient steps
        (each step on the episodes before it), and the adapted parameters."""
        steps = self.inner_steps if steps is None else steps
        gen = torch.Generator().manual_seed(seed)
        fast = detached(self.params())
        rule = self.inner_rule()
        state = rule.init({k: fast[k] for k in self.fast_keys() or fast})
        episodes = []
        for s in range(steps + 1):
            data = family.collect(self._forward, fast, task.view(1, -1), [gen], False, family.episodes)[0]
            episodes.append(data)
            if s < steps:
                fast, state = first_order_step(self._forward, family.task_loss, fast, data, state, rule,
                                               self.fast_keys())
        return episodes, fast

    def adapt_policy(self, family: EnvironmentFamily, task: Tensor, steps: int | None = None,
                     seed: int = 0) -> AdaptedPolicy:
        """Adapt to one task of ``family`` with ``steps`` policy-gradient steps on fresh episodes
        (``family.episodes`` each); returns a callable policy."""
        return AdaptedPolicy(self.model, self.adaptation_episodes(family, task, steps, seed)[1], family)


class PolicyPretrain(MAMLTRPO):
    """The transfer baseline of meta-RL: TRPO on the episodes of all training tasks (no inner step),
    then the same policy-gradient adaptation at test time."""

    name = "policy_pretrain"
    title = "pretrained baseline"
    adapts_while_training = False
