"""The inner loop and the meta-loss for any task loss (:class:`metalearn.protocols.TaskLoss`).

Supervised ``(x, y)`` tasks have their own fast paths in :mod:`.inner_loop` (a per-task loop and
``vmap``); this module runs every other kind of task through the contract alone, one task at a
time (the reference engine), so that a new family needs no change here:

1. ``support = task_loss.support(forward, theta, task, gen)``, collected with the parameters
   before adaptation and outside autograd (for RL: pre-update episodes sampled with theta);
2. ``steps`` updates of the inner rule on ``task_loss.loss(forward, params, support)``, through
   which second-order mode differentiates;
3. ``query = task_loss.query(forward, theta', task, gen)``, collected with the adapted parameters
   (post-update episodes), and the task's meta-loss ``task_loss.loss(forward, theta', query)``;
4. the meta-batch's loss is the mean over tasks weighted by the batch's per-task weights.

The collected data is returned, so that an outer step can re-evaluate the meta-loss at new
parameters on the *same* data (a TRPO step's line search) by passing it back as ``collected``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..batch import TaskTree
from .inner_loop import _split, check_mode, loss_step
from .params import ParamDict, detached
from .rules import InnerRule

Forward = Callable[[ParamDict, Any], Any]
Collected = list[tuple[Any, Any]]   # per task: (support data, query data)


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


def _task_query_loss(forward: Forward, tree: TaskTree, t: int, params: ParamDict, rule: InnerRule, steps: int,
                     mode: str, fast_keys: Sequence[str] | None, collected: Collected | None
                     ) -> tuple[Tensor, dict[str, Tensor], tuple[Any, Any]]:
    support, query = collected[t] if collected is not None else (None, None)
    gen = tree.generator(t)  # one stream per task: the support data, then the query data
    fast, support = adapt_task(forward, tree, t, params, rule, steps, mode, fast_keys, support, gen)
    if query is None:
        query = tree.task_loss.query(forward, detached(fast), tree.task(t), gen)
    loss = tree.task_loss.loss(forward, fast, query)
    with torch.no_grad():
        metrics = {k: v.detach() for k, v in tree.task_loss.metrics(forward, detached(fast), query).items()}
    return loss, metrics, (support, query)


def _weights(tree: TaskTree, like: Tensor) -> Tensor:
    """Each task's share of the meta-batch mean, in the parameters' dtype and device."""
    w = torch.ones(tree.num_tasks, dtype=torch.float64) if tree.weights is None else tree.weights.double()
    return (w / w.sum()).to(device=like.device, dtype=like.dtype)


def _stack(metrics: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.stack([m[k] for m in metrics]) for k in (metrics[0] if metrics else {})}


def meta_loss_tasks(forward: Forward, tree: TaskTree, params: ParamDict, rule: InnerRule, steps: int,
                    mode: str = "second_order", fast_keys: Sequence[str] | None = None,
                    collected: Collected | None = None) -> tuple[Tensor, dict[str, Tensor], Collected]:
    """The weighted mean over tasks of the query loss after adapting on the support data, the
    per-task metrics (``[tasks]`` tensors) and the collected data."""
    check_mode(mode)
    w = _weights(tree, next(iter(params.values())))
    total: Tensor | float = 0.0
    metrics, data = [], []
    for t in range(tree.num_tasks):
        loss, m, d = _task_query_loss(forward, tree, t, params, rule, steps, mode, fast_keys,
                                      collected)
        total = total + w[t] * loss
        metrics.append(m)
        data.append(d)
    return total, _stack(metrics), data  # type: ignore[return-value]


def meta_backward_tasks(forward: Forward, tree: TaskTree, params: ParamDict, rule: InnerRule, steps: int,
                        mode: str = "second_order", fast_keys: Sequence[str] | None = None,
                        scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor], Collected]:
    """``(scale * meta_loss).backward()`` task by task (one task's graph alive at a time); returns
    the detached meta-loss, the per-task metrics and the collected data."""
    check_mode(mode)
    w = _weights(tree, next(iter(params.values())))
    total = torch.zeros(())
    metrics, data = [], []
    for t in range(tree.num_tasks):
        loss, m, d = _task_query_loss(forward, tree, t, params, rule, steps, mode, fast_keys, None)
        (loss * (w[t] * scale)).backward()
        total = total + w[t].detach().cpu() * loss.detach().cpu()
        metrics.append(m)
        data.append(d)
    return total, _stack(metrics), data


def adaptation_curve_tasks(forward: Forward, tree: TaskTree, params: ParamDict, rule: InnerRule, steps: int,
                           fast_keys: Sequence[str] | None = None, metric: str | None = None) -> Tensor:
    """Each task's query loss (or its ``metric`` from ``task_loss.metrics``) before adaptation
    and after each of ``steps`` first-order updates on one support set; ``[tasks, steps + 1]``."""
    params = detached(params)
    rows = []
    for t in range(tree.num_tasks):
        task, gen = tree.task(t), tree.generator(t)
        support = tree.task_loss.support(forward, params, task, gen)

        def support_loss(q: ParamDict, support: Any = support) -> Tensor:  # this task's support set
            loss: Tensor = tree.task_loss.loss(forward, q, support)
            return loss

        p, state, out = params, rule.init(_split(params, fast_keys)[0]), []
        for s in range(steps + 1):
            if s:
                with torch.enable_grad():
                    leaf = {k: v.detach().requires_grad_(True) for k, v in p.items()}
                    p, state = loss_step(support_loss, leaf, state, rule, "first_order", fast_keys)
                p = detached(p)
            with torch.no_grad():
                query = tree.task_loss.query(forward, p, task, gen)
                value = (tree.task_loss.loss(forward, p, query) if metric is None
                         else tree.task_loss.metrics(forward, p, query)[metric])
            out.append(value.detach())
        rows.append(torch.stack(out))
    return torch.stack(rows)
