"""MAML-TRPO: Finn, Abbeel & Levine (2017), "Model-Agnostic Meta-Learning for Fast Adaptation of
Deep Networks", section 5.3: meta-reinforcement learning of a policy initialisation.

Per task of a meta-batch: collect K support episodes with the policy theta; one (or more) vanilla
policy-gradient step(s) on them gives theta'; collect query episodes with theta'; the meta-loss
is the surrogate of the query episodes at theta'(theta), differentiated through the inner step
(second order) or not (first order). The outer update is a TRPO step (Schulman et al. 2015) with
the mean KL of the post-update policies bounded by ``max_kl``. Episodes of all tasks are collected
in one batched call (:meth:`~metalearn.tasks.rl.environments.EnvTasks.collect`).

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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from ...batch import TaskTree
from ...errors import ConfigError
from ...functional import ParamDict, adapt_task, detached, make_forward
from ...functional.inner_loop import _split, loss_step
from ...protocols import EnvironmentFamily, TaskFamily
from ..base import ModeSettings, check_choice
from ..gradient.maml import MAML
from .outer import OuterPart, TrustRegion

ESTIMATORS = ("lvc", "naive")


@dataclass
class MAMLTRPOSettings(ModeSettings):
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


class RLClosure:
    """The meta-loss at the current parameters re-evaluated on the episodes of the last meta-step
    (``closure()``), and the mean KL of the post-update policies from those that collected the
    query episodes (``closure.kl()``): what the TRPO step and ProMP's repeated steps call."""

    def __init__(self, algo: MAMLTRPO, tree: TaskTree, collected: list[tuple[Any, Any]]) -> None:
        self.algo, self.tree, self.collected = algo, tree, collected

    def _adapted(self, mode: str | None) -> list[ParamDict]:
        return [self.algo.adapt_on(self.tree, t, s, mode) for t, (s, _) in enumerate(self.collected)]

    def __call__(self, mode: str | None = None) -> Tensor:
        w = self.algo.task_weights(self.tree)
        params = self.algo.params()
        return cast(Tensor, sum(w[t] * self.algo.task_objective(self.tree, params, fast, *self.collected[t])
                                for t, fast in enumerate(self._adapted(mode))))

    def kl(self, mode: str | None = None) -> Tensor:
        w = self.algo.task_weights(self.tree)
        loss = self.tree.task_loss
        return cast(Tensor, sum(w[t] * loss.kl(self.algo._forward, fast, self.collected[t][1])
                                for t, fast in enumerate(self._adapted(mode))))

    def values(self) -> tuple[float, float]:
        """The meta-loss and the KL as numbers (first-order adaptation: the same values, no graph)."""
        with torch.enable_grad():
            return float(self("first_order").detach()), float(self.kl("first_order").detach())


class MAMLTRPO(MAML):
    """MAML for policies, with batched episode collection and a TRPO outer step.

    Args:
        model: a policy (``metalearn.models.policies``) or any module giving the parameters of the
            family's action distribution.
        inner_lr: the policy-gradient step size of adaptation (0.1 in MAML's experiments).
        inner_steps: policy-gradient steps during meta-training (and the default for adaptation).
        mode: ``"second_order"`` or ``"first_order"``.
        max_kl, cg_iters, cg_damping, ls_steps, ls_backtrack: the TRPO step (:class:`~.trpo.TRPOStep`).
        estimator: ``"lvc"`` or ``"naive"`` (see the module docstring).
        outer: the outer step as a part (:mod:`.outer`): default a :class:`~.outer.TrustRegion` of
            the TRPO arguments; ProMP is this algorithm configured with a :class:`~.outer.Proximal` one.
    """

    name = "maml_trpo"
    task_kinds: tuple[str, ...] = ("reinforcement",)
    graphable = False
    supports_safeguard = False
    train_steps_zero = False   # PolicyPretrain: no inner step while training
    # the environment steps of a meta-step are a count: logged as a throughput (env_steps_per_s)
    rate_metrics: tuple[str, ...] = ("env_steps",)
    progress_metrics: tuple[str, ...] = ("train_return", "env_steps_per_s")

    def __init__(self, model: nn.Module, inner_lr: float = 0.1, inner_steps: int = 1, mode: str = "second_order",
                 engine: str = "auto", max_kl: float = 0.01, cg_iters: int = 10, cg_damping: float = 1e-5,
                 ls_steps: int = 15, ls_backtrack: float = 0.8, estimator: str = "lvc",
                 outer: OuterPart | None = None) -> None:
        super().__init__(model, inner_lr=inner_lr, inner_steps=inner_steps, mode=mode, engine="loop")
        check_choice("estimator", estimator, ESTIMATORS)
        self.estimator = estimator
        self.outer: OuterPart = outer or TrustRegion(float(max_kl), int(cg_iters), float(cg_damping), int(ls_steps),
                                                     float(ls_backtrack))

    @classmethod
    def from_settings(cls, model: nn.Module, family: TaskFamily, settings: Any) -> MAMLTRPO:
        if not hasattr(family, "collect"):
            raise ConfigError(f"{cls.name} trains policies on environment task families; "
                              f"{type(family).__name__} is not one")
        return cls(model, **dataclasses.asdict(settings))

    def outer_step(self, params: Sequence[Tensor], lr: float) -> torch.optim.Optimizer | None:
        return self.outer.optimizer(params, lr)

    # -- pieces ------------------------------------------------------------------------------------
    @property
    def train_steps(self) -> int:
        return 0 if self.train_steps_zero else self.inner_steps

    @staticmethod
    def task_weights(tree: TaskTree) -> list[float]:
        w = torch.ones(tree.num_tasks, dtype=torch.float64) if tree.weights is None else tree.weights.double()
        return (w / w.sum()).tolist()

    def adapt_on(self, tree: TaskTree, t: int, support: Any, mode: str | None = None) -> ParamDict:
        """Task ``t``'s adapted parameters from its support episodes (the training inner steps)."""
        if self.train_steps == 0:
            return self.params()
        return adapt_task(self._forward, tree, t, self.params(), self.inner_rule(), self.train_steps,
                          mode or self.mode, self.fast_keys(), support=support)[0]

    def task_objective(self, tree: TaskTree, params: ParamDict, fast: ParamDict, support: Any, query: Any) -> Tensor:
        """One task's outer loss, as the outer part forms it (the surrogate of its query episodes at
        the adapted parameters for TRPO; ProMP's clipped one)."""
        return self.outer.objective(self._forward, tree, params, fast, support, query)

    def _mark(self, data: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        if self.estimator == "naive":
            for d in data:
                d["first_order_ratio"] = torch.ones(())
        return data

    def collect_batch(self, tree: TaskTree) -> tuple[Tensor, dict[str, float], list[tuple[Any, Any]]]:
        """The meta-loss of ``tree`` with episodes collected for all its tasks at once; returns the
        loss (with its graph), the step's metrics and the collected ``(support, query)`` per task."""
        family = tree.task_loss.family
        gens = [tree.generator(t) for t in range(tree.num_tasks)]
        tasks = tree.data["task"]
        params = self.params()
        t0 = time.perf_counter()
        metrics: dict[str, float] = {}
        if self.train_steps == 0:
            query = family.collect(self._forward, detached(params), tasks, gens, False, family.queries)
            sampled = time.perf_counter() - t0
            support: list[Any] = [None] * tree.num_tasks
            fast = [params] * tree.num_tasks
        else:
            support = self._mark(family.collect(self._forward, detached(params), tasks, gens, False, family.episodes))
            sampled = time.perf_counter() - t0
            fast = [self.adapt_on(tree, t, support[t]) for t in range(tree.num_tasks)]
            stacked = {k: torch.stack([f[k].detach() for f in fast]) for k in fast[0]}
            t1 = time.perf_counter()
            query = family.collect(self._forward, stacked, tasks, gens, True, family.queries)
            sampled += time.perf_counter() - t1
            for key in family.metric_keys:
                metrics[f"{key}_before"] = float(torch.stack([d[key] for d in support]).mean())
        w = self.task_weights(tree)
        loss = cast(Tensor, sum(w[t] * self.task_objective(tree, params, fast[t], support[t], query[t])
                                for t in range(tree.num_tasks)))
        for key in family.metric_keys:
            metrics[key] = float(torch.stack([d[key] for d in query]).mean())
        steps = sum(float(d["mask"].sum()) for d in [*query, *(s for s in support if s is not None)])
        metrics["env_steps"] = steps
        metrics["sample_seconds"] = sampled
        self.task_metrics = {key: torch.stack([d[key] for d in query]) for key in family.metric_keys}
        return loss, metrics, list(zip(support if self.train_steps else query, query))

    # -- the algorithm interface -------------------------------------------------------------------
    def meta_loss(self, batch: Any) -> Tensor:
        loss, self.last_metrics, self._collected = self.collect_batch(self._tree(batch))
        return loss

    def meta_backward(self, batch: Any, scale: float = 1.0) -> Tensor:
        loss = self.meta_loss(batch)
        (loss * scale).backward()
        return loss.detach()

    def closure(self, batch: Any) -> Callable[[], Tensor]:
        return RLClosure(self, self._tree(batch), self._collected)

    def _tree(self, batch: Any) -> TaskTree:
        if not isinstance(batch, TaskTree) or not hasattr(batch.task_loss, "family"):
            raise TypeError(f"{self.name} trains on the task trees of environment task families")
        return batch

    def _step(self, fast: ParamDict, data: Any, task_loss: Any) -> ParamDict:
        """One first-order policy-gradient step of ``fast`` on the episodes ``data`` (test time)."""
        with torch.enable_grad():
            leaf = {k: v.detach().requires_grad_(True) for k, v in fast.items()}
            state = self.inner_rule().init(_split(leaf, self.fast_keys())[0])
            new, _ = loss_step(lambda p: task_loss.loss(self._forward, p, data), leaf, state, self.inner_rule(),
                               "first_order", self.fast_keys())
        return detached(new)

    def adaptation_curve(self, batch: Any, steps: int, metric: Any = None) -> Tensor:
        """Each task's ``metric`` (a name from the task loss's metrics, default the return) before
        adaptation and after each of ``steps`` policy-gradient steps, each step on fresh episodes of
        the policy of the moment (MAML's test protocol); ``[tasks, steps + 1]``."""
        tree = self._tree(batch)
        family = tree.task_loss.family
        key = metric if isinstance(metric, str) else "return"
        gens = [tree.generator(t) for t in range(tree.num_tasks)]
        tasks = tree.data["task"]
        params = detached(self.params())
        current = [params] * tree.num_tasks
        rows = []
        for s in range(steps + 1):
            stacked = {k: torch.stack([c[k] for c in current]) for k in params}
            data = family.collect(self._forward, stacked, tasks, gens, True, family.episodes)
            rows.append(torch.stack([d[key] for d in data]))
            if s < steps:
                current = [self._step(current[t], data[t], tree.task_loss) for t in range(tree.num_tasks)]
        return torch.stack(rows, dim=1)

    def adaptation_episodes(self, family: EnvironmentFamily, task: Tensor, steps: int | None = None, seed: int = 0
                            ) -> tuple[list[dict[str, Tensor]], ParamDict]:
        """The episodes of one task of ``family`` (its ``[task_dim]`` description: a goal, a
        direction...) collected before adaptation and after each of ``steps`` policy-gradient steps
        (each step on the episodes before it), and the adapted parameters."""
        steps = self.inner_steps if steps is None else steps
        gen = torch.Generator().manual_seed(seed)
        fast = detached(self.params())
        episodes = []
        for s in range(steps + 1):
            data = family.collect(self._forward, fast, task.view(1, -1), [gen], False, family.episodes)[0]
            episodes.append(data)
            if s < steps:
                fast = self._step(fast, data, family.task_loss)
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
    train_steps_zero = True
