"""The inner loop and the meta-loss for any task loss (:class:`metalearn.protocols.TaskLoss`).

Supervised ``(x, y)`` tasks have their own fast paths in :mod:`.inner_loop` (a per-task loop and
``vmap``); this module runs every other kind of task through the contract alone, so that a new
family needs no change here:

1. ``support = task_loss.support(forward, theta, task, gen)``, collected with the parameters
   before adaptation and outside autograd (for RL: pre-update episodes sampled with theta);
2. ``steps`` updates of the inner rule on ``task_loss.loss(forward, params, support)``, through
   which second-order mode differentiates;
3. ``query = task_loss.query(forward, theta', task, gen)``, collected with the adapted parameters
   (post-update episodes), and the task's outer loss, by default ``task_loss.loss(forward,
   theta', query)`` (:func:`query_loss`); an outer part may give another :data:`Objective` (ProMP's
   clipped surrogate with a KL penalty) or a constraint (a trust region's KL) in its place;
4. the meta-batch's loss is the mean over tasks weighted by the batch's per-task weights.

A task loss with the :class:`~metalearn.protocols.BatchedCollection` capability collects every
task's support data in one call and every task's query data in another (one vectorised
environment for all the episodes of a meta-batch); each task keeps its own generator, drawn in
the same order (support, then query). An ``on_policy`` task loss is scored along an adaptation
curve on fresh support data before each step, the test protocol of meta-RL (Finn et al. 2017).

The collected data is returned, so that an outer step can re-evaluate the meta-loss at new
parameters on the *same* data (a TRPO step's line search) by passing it back as ``collected``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._util.progress import advance
from ..batch import TaskTree
from ..protocols import BatchedCollection
from .inner_loop import _split, check_mode, loss_step
from .params import ParamDict, detached
from .rules import InnerRule

Forward = Callable[[ParamDict, Any], Any]
Collected = list[tuple[Any, Any]]   # per task: (support data, query data)
# one task's outer loss from (forward, task loss, parameters before adaptation, adapted parameters,
# support data, query data)
Objective = Callable[[Forward, Any, ParamDict, ParamDict, Any, Any], Tensor]


def query_loss(forward: Forward, task_loss: Any, params: ParamDict, fast: ParamDict, support: Any,
               query: Any) -> Tensor:
    """The default outer objective: the task loss of the query data at the adapted parameters."""
    loss: Tensor = task_loss.loss(forward, fast, query)
    return loss


@dataclass
class TreeStep:
    """What one meta-loss over a :class:`~metalearn.batch.TaskTree` gives: the weighted loss, each
    task's metrics on its query data after adaptation and on its support data before (``[tasks]``
    tensors; none before when nothing adapts), the collected data, and the seconds spent
    collecting it."""

    loss: Tensor
    metrics: dict[str, Tensor]
    before: dict[str, Tensor] = field(default_factory=dict)
    collected: Collected = field(default_factory=list)
    collect_seconds: float = 0.0


def adapt_task(forward: Forward, tree: TaskTree, t: int, params: ParamDict, rule: InnerRule, steps: int,
               mode: str = "second_order", fast_keys: Sequence[str] | None = None,
               support: Any = None, generator: torch.Generator | None = None) -> tuple[ParamDict, Any]:
    """Adapt ``params`` to task ``t`` of ``tree``; returns the adapted parameters and the support
    data (collected with ``params`` and ``generator`` unless given)."""
    if support is None:
        support = tree.task_loss.support(forward, detached(params), tree.task(t), generator)
    state = rule.init(_split(params, fast_keys)[0])
    for _ in range(steps):
        params, state = loss_step(lambda p: tree.task_loss.loss(forward, p, support), params, state, rule, mode,
                                  fast_keys)
    return params, support


def first_order_step(forward: Forward, task_loss: Any, params: ParamDict, data: Any, state: Any, rule: InnerRule,
                     fast_keys: Sequence[str] | None = None) -> tuple[ParamDict, Any]:
    """One first-order inner update of ``params`` on ``data`` (test time): detached parameters and
    the rule's new state."""
    with torch.enable_grad():
        leaf = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        new, state = loss_step(lambda p: task_loss.loss(forward, p, data), leaf, state, rule, "first_order",
                               fast_keys)
    return detached(new), state


def _weights(tree: TaskTree, like: Tensor) -> Tensor:
    """Each task's share of the meta-batch mean, in the parameters' dtype and device."""
    w = torch.ones(tree.num_tasks, dtype=torch.float64) if tree.weights is None else tree.weights.double()
    return (w / w.sum()).to(device=like.device, dtype=like.dtype)


def _stack(metrics: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.stack([m[k] for m in metrics]) for k in (metrics[0] if metrics else {})}


@torch.no_grad()
def _metrics(forward: Forward, task_loss: Any, params: ParamDict, data: Any) -> dict[str, Tensor]:
    return {k: v.detach() for k, v in task_loss.metrics(forward, detached(params), data).items()}


def _task_query_loss(forward: Forward, tree: TaskTree, t: int, params: ParamDict, rule: InnerRule, steps: int,
                     mode: str, fast_keys: Sequence[str] | None, collected: Collected | None,
                     objective: Objective) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor], tuple[Any, Any],
                                                    float]:
    """Task ``t`` alone: its outer loss, metrics after and before adaptation, data and seconds of
    collection."""
    support, query = collected[t] if collected is not None else (None, None)
    gen = tree.generator(t)  # one stream per task: the support data, then the query data
    seconds, loss_of = 0.0, tree.task_loss
    if steps == 0:   # nothing adapts: no support data is needed
        fast = params
    else:
        if support is None:
            started = time.perf_counter()
            support = loss_of.support(forward, detached(params), tree.task(t), gen)
            seconds += time.perf_counter() - started
        fast, _ = adapt_task(forward, tree, t, params, rule, steps, mode, fast_keys, support)
    if query is None:
        started = time.perf_counter()
        query = loss_of.query(forward, detached(fast), tree.task(t), gen)
        seconds += time.perf_counter() - started
    loss = objective(forward, loss_of, params, fast, support, query)
    before = _metrics(forward, loss_of, params, support) if support is not None else {}
    return loss, _metrics(forward, loss_of, fast, query), before, (support, query), seconds


def _tree_step_each(forward: Forward, tree: TaskTree, params: ParamDict, rule: InnerRule, steps: int, mode: str,
                    fast_keys: Sequence[str] | None, collected: Collected | None, objective: Objective,
                    backward_scale: float | None = None) -> TreeStep:
    """Task by task; with ``backward_scale``, each task's share of the loss is back-propagated as
    soon as it is formed (one task's graph alive at a time) and the loss returned detached."""
    w = _weights(tree, next(iter(params.values())))
    total: Tensor = torch.zeros(()) if backward_scale is not None else 0.0  # type: ignore[assignment]
    after, before, data, seconds = [], [], [], 0.0
    for t in range(tree.num_tasks):
        loss, m, b, d, sec = _task_query_loss(forward, tree, t, params, rule, steps, mode, fast_keys, collected,
                                              objective)
        if backward_scale is None:
            total = total + w[t] * loss
        else:
            (loss * (w[t] * backward_scale)).backward()
            total = total + w[t].detach().cpu() * loss.detach().cpu()
        after.append(m)
        before.append(b)
        data.append(d)
        seconds += sec
    return TreeStep(total, _stack(after), _stack(before), data, seconds)


def _tree_step_batched(forward: Forward, tree: TaskTree, params: ParamDict, rule: InnerRule, steps: int, mode: str,
                       fast_keys: Sequence[str] | None, collected: Collected | None, objective: Objective) -> TreeStep:
    """All tasks at once: every support set in one collection, each task adapted, every query set
    in one collection with the per-task adapted parameters."""
    loss_of, n = tree.task_loss, tree.num_tasks
    gens = [tree.generator(t) for t in range(n)]
    seconds = 0.0
    support: list[Any] = [None] * n if collected is None else [s for s, _ in collected]
    query: list[Any] | None = None if collected is None else [q for _, q in collected]
    if steps and collected is None:
        started = time.perf_counter()
        support = loss_of.support_batch(forward, detached(params), tree, gens)
        seconds += time.perf_counter() - started
    fast = [params] * n if steps == 0 else [adapt_task(forward, tree, t, params, rule, steps, mode, fast_keys,
                                                       support[t])[0] for t in range(n)]
    if query is None:
        started = time.perf_counter()
        if steps == 0:   # one policy for every task
            query = loss_of.query_batch(forward, detached(params), tree, gens, per_task=False)
        else:
            stacked = {k: torch.stack([f[k].detach() for f in fast]) for k in fast[0]}
            query = loss_of.query_batch(forward, stacked, tree, gens, per_task=True)
        seconds += time.perf_counter() - started
    w = _weights(tree, next(iter(params.values())))
    total: Tensor = 0.0  # type: ignore[assignment]
    for t in range(n):
        total = total + w[t] * objective(forward, loss_of, params, fast[t], support[t], query[t])
    after = _stack([_metrics(forward, loss_of, fast[t], query[t]) for t in range(n)])
    before = {} if steps == 0 else _stack([_metrics(forward, loss_of, params, support[t]) for t in range(n)])
    return TreeStep(total, after, before, list(zip(support, query)), seconds)


def tree_step(forward: Forward, tree: TaskTree, params: ParamDict, rule: InnerRule, steps: int,
              mode: str = "second_order", fast_keys: Sequence[str] | None = None, collected: Collected | None = None,
              objective: Objective | None = None) -> TreeStep:
    """The weighted mean over tasks of the outer loss (``objective``, default :func:`query_loss`)
    after adapting on the support data, re-using ``collected`` data when given; batched collection
    when the task loss has it."""
    check_mode(mode)
    objective = objective or query_loss
    if isinstance(tree.task_loss, BatchedCollection):
        return _tree_step_batched(forward, tree, params, rule, steps, mode, fast_keys, collected, objective)
    return _tree_step_each(forward, tree, params, rule, steps, mode, fast_keys, collected, objective)


def tree_backward(forward: Forward, tree: TaskTree, params: ParamDict, rule: InnerRule, steps: int,
                  mode: str = "second_order", fast_keys: Sequence[str] | None = None, scale: float = 1.0,
                  objective: Objective | None = None) -> TreeStep:
    """``(scale * meta_loss).backward()``, the loss detached in the result. Task by task (one
    task's graph alive at a time), except under batched collection, where every task's adapted
    parameters are alive at once anyway (the query collection needs them all): one backward."""
    check_mode(mode)
    objective = objective or query_loss
    if isinstance(tree.task_loss, BatchedCollection):
        out = _tree_step_batched(forward, tree, params, rule, steps, mode, fast_keys, None, objective)
        (out.loss * scale).backward()
        out.loss = out.loss.detach()
        return out
    return _tree_step_each(forward, tree, params, rule, steps, mode, fast_keys, None, objective, scale)


def _score(forward: Forward, task_loss: Any, params: ParamDict, data: Any, metric: str | None) -> Tensor:
    with torch.no_grad():
        value: Tensor = (task_loss.loss(forward, params, data) if metric is None
                         else task_loss.metrics(forward, params, data)[metric])
    return value.detach()


def _on_policy_curve(forward: Forward, tree: TaskTree, params: ParamDict, rule: InnerRule, steps: int,
                     fast_keys: Sequence[str] | None, metric: str | None) -> Tensor:
    """Before each step, fresh support data from each task's current parameters, scored and then
    adapted on (one collection for all tasks under batched collection)."""
    loss_of, n = tree.task_loss, tree.num_tasks
    gens = [tree.generator(t) for t in range(n)]
    current = [params] * n
    states = [rule.init(_split(params, fast_keys)[0]) for _ in range(n)]
    rows = []
    for s in range(steps + 1):
        if isinstance(loss_of, BatchedCollection):
            stacked = {k: torch.stack([c[k] for c in current]) for k in params}
            data = loss_of.support_batch(forward, stacked, tree, gens, per_task=True)
        else:
            data = [loss_of.support(forward, current[t], tree.task(t), gens[t]) for t in range(n)]
        rows.append(torch.stack([_score(forward, loss_of, current[t], data[t], metric) for t in range(n)]))
        advance(1.0 / (steps + 1))
        if s < steps:
            for t in range(n):
                current[t], states[t] = first_order_step(forward, loss_of, current[t], data[t], states[t], rule,
                                                         fast_keys)
    return torch.stack(rows, dim=1)


def adaptation_curve_tasks(forward: Forward, tree: TaskTree, params: ParamDict, rule: InnerRule, steps: int,
                           fast_keys: Sequence[str] | None = None, metric: str | None = None) -> Tensor:
    """Each task's query loss (or its ``metric`` from ``task_loss.metrics``) before adaptation
    and after each of ``steps`` first-order updates, ``[tasks, steps + 1]``: on one support set,
    scored on query data; or, for an ``on_policy`` task loss, each step on fresh support data from
    the parameters of the moment, which is also what they are scored on."""
    params = detached(params)
    if getattr(tree.task_loss, "on_policy", False):
        return _on_policy_curve(forward, tree, params, rule, steps, fast_keys, metric)
    rows = []
    for t in range(tree.num_tasks):
        task, gen = tree.task(t), tree.generator(t)
        support = tree.task_loss.support(forward, params, task, gen)
        p, state, out = params, rule.init(_split(params, fast_keys)[0]), []
        for s in range(steps + 1):
            if s:
                p, state = first_order_step(forward, tree.task_loss, p, support, state, rule, fast_keys)
            with torch.no_grad():
                query = tree.task_loss.query(forward, p, task, gen)
            out.append(_score(forward, tree.task_loss, p, query, metric))
            advance(1.0 / ((steps + 1) * tree.num_tasks))
        rows.append(torch.stack(out))
    return torch.stack(rows)
