"""The inner loop and the meta-loss: adapt parameters to one task, then score them on its query set.

Two execution paths compute the same numbers:

* ``loop``: a plain per-task Python loop with ``torch.autograd.grad``. It is the reference that
  every faster path is tested against in float64, and the fastest path for convolutional nets on
  CPU (``vmap`` over tasks measured 2.3x slower there, with 10x the memory, and PyTorch's vmap of
  the BatchNorm double backward gave wrong second-order gradients).
* ``vmap``: the tasks of a meta-batch batched with ``torch.func.vmap`` over ``torch.func.grad``.
  On the sinusoid MLP it measured 7.8x faster than the loop on this CPU
  (``benchmarks/sinusoid_speed.py``: 270.7 against 34.6 meta-steps/s).

The differentiation mode is one named choice: ``"second_order"`` differentiates through the inner
updates (MAML, Finn et al. 2017), ``"first_order"`` treats the inner gradients as constants
(first-order MAML, same paper, section 5.2).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from .._util.progress import advance
from ..batch import TaskBatch
from .params import ParamDict, detached, has_batchnorm
from .rules import InnerRule

Mode = Literal["second_order", "first_order"]
MODES: tuple[str, ...] = ("second_order", "first_order")
ENGINES: tuple[str, ...] = ("auto", "loop", "vmap")
Forward = Callable[[ParamDict, Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
StepParams = Callable[[int, ParamDict], ParamDict]


def check_mode(mode: str) -> None:
    """Refuse an unknown differentiation mode.

    Args:
        mode: one of :data:`MODES` (``"second_order"``, ``"first_order"``).

    Raises:
        ValueError: naming the valid modes.
    """
    if mode not in MODES:
        raise ValueError(f"unknown differentiation mode {mode!r}; choose one of {', '.join(MODES)}")


def choose_engine(engine: str, model: nn.Module) -> str:
    """Resolve ``"auto"``: vmap for models without convolutions or BatchNorm, else the task loop."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine != "auto":
        return engine
    conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    return "loop" if conv or has_batchnorm(model) else "vmap"


def _split(params: ParamDict, fast_keys: Sequence[str] | None) -> tuple[ParamDict, ParamDict]:
    if fast_keys is None:
        return params, {}
    return {k: params[k] for k in fast_keys}, {k: v for k, v in params.items() if k not in fast_keys}


def inner_step(forward: Forward, loss_fn: LossFn, params: ParamDict, state: Any, x: Tensor, y: Tensor,
               rule: InnerRule, mode: str = "second_order",
               fast_keys: Sequence[str] | None = None) -> tuple[ParamDict, Any]:
    """One inner update of the ``fast_keys`` parameters (all when None) on ``(x, y)``, written
    with ``torch.func.grad`` so that it runs as is under ``vmap``."""
    fast, slow = _split(params, fast_keys)
    g = grad(lambda f: loss_fn(forward({**slow, **f}, x), y))(fast)
    if mode == "first_order":
        g = detached(g)
    fast, state = rule.update(g, state, fast)
    return {**slow, **fast}, state


def inner_step_reference(forward: Forward, loss_fn: LossFn, params: ParamDict, state: Any, x: Tensor,
                         y: Tensor, rule: InnerRule, mode: str = "second_order",
                         fast_keys: Sequence[str] | None = None) -> tuple[ParamDict, Any]:
    """The same update written with ``torch.autograd.grad``: the reference path."""
    return loss_step(lambda p: loss_fn(forward(p, x), y), params, state, rule, mode, fast_keys)


def loss_step(loss_of: Callable[[ParamDict], Tensor], params: ParamDict, state: Any, rule: InnerRule,
              mode: str = "second_order", fast_keys: Sequence[str] | None = None) -> tuple[ParamDict, Any]:
    """One inner update of the ``fast_keys`` parameters against any loss of the parameters,
    ``loss_of(params) -> scalar`` (a task's loss contract: supervised pairs, a masked loss over
    ragged rows, a policy-gradient surrogate), with ``torch.autograd.grad``; in second-order mode
    the update stays differentiable with respect to ``params``."""
    fast, slow = _split(params, fast_keys)
    names = list(fast)
    loss = loss_of(params)
    needs_graph = mode == "second_order" and torch.is_grad_enabled()
    gs = torch.autograd.grad(loss, [fast[k] for k in names], create_graph=needs_graph, allow_unused=True)
    g = {k: (torch.zeros_like(fast[k]) if gi is None else gi) for k, gi in zip(names, gs)}
    if not needs_graph:
        g = detached(g)
    fast, state = rule.update(g, state, fast)
    return {**slow, **fast}, state


def adapt(forward: Forward, loss_fn: LossFn, params: ParamDict, x: Tensor, y: Tensor,
          rule: InnerRule, steps: int, mode: str = "second_order",
          fast_keys: Sequence[str] | None = None, safeguard: bool = False) -> ParamDict:
    """Adapt ``params`` to one task's support set ``(x, y)`` with ``steps`` updates of ``rule``: the
    inner loop of MAML (Finn, Abbeel and Levine 2017).

    Runs under ``vmap``; in ``"second_order"`` mode the result stays differentiable with respect to
    ``params``, so a query loss of the adapted parameters back-propagates into the initialisation.

    Args:
        forward: ``forward(params, x)``, e.g. :func:`make_forward` of a module.
        loss_fn: ``loss_fn(outputs, targets)``, a scalar.
        params: the initial parameters (a name -> tensor dict).
        x: the support inputs.
        y: the support targets.
        rule: the update rule (:func:`sgd`, :func:`chain` of transforms, ...).
        steps: inner updates.
        mode: ``"second_order"`` or ``"first_order"`` (the gradients are detached).
        fast_keys: only these parameters change (ANIL's head); None: all of them.
        safeguard: take :func:`safeguarded_step` s (first order, for adaptation at test time).

    Returns:
        The adapted parameters; ``params`` is not modified.

    Example:
        Two SGD steps of a one-weight linear model toward ``y = 2x``:

        >>> import torch
        >>> import torch.nn.functional as F
        >>> from metalearn.functional import adapt, make_forward, named_params, sgd
        >>> model = torch.nn.Linear(1, 1, bias=False)
        >>> _ = torch.nn.init.zeros_(model.weight)
        >>> x, y = torch.tensor([[1.0], [2.0]]), torch.tensor([[2.0], [4.0]])
        >>> adapted = adapt(make_forward(model), F.mse_loss, named_params(model), x, y, sgd(0.1), steps=2)
        >>> adapted["weight"].detach()   # 0 -> 1.0 -> 1.5; the model keeps its own weight
        tensor([[1.5000]])
        >>> model.weight.item()
        0.0
    """
    state = rule.init(_split(params, fast_keys)[0])
    if safeguard:
        scale, current = torch.ones((), dtype=x.dtype, device=x.device), loss_fn(forward(params, x), y)
        for _ in range(steps):
            params, state, scale, current = safeguarded_step(forward, loss_fn, params, state, x, y, rule,
                                                             fast_keys, scale, current)
        return params
    for _ in range(steps):
        params, state = inner_step(forward, loss_fn, params, state, x, y, rule, mode, fast_keys)
    return params


def adapt_path(forward: Forward, loss_fn: LossFn, params: ParamDict, x: Tensor, y: Tensor, rule: InnerRule,
               steps: int, mode: str = "second_order", fast_keys: Sequence[str] | None = None,
               step_params: StepParams | None = None, reference: bool = False) -> list[ParamDict]:
    """The parameters before adaptation and after each of ``steps`` updates (``steps + 1`` dicts).

    ``step_params(s, params)`` is a per-step hook: the parameters that inner step ``s`` starts from
    (MAML++ swaps in step ``s``'s own BatchNorm weights there); entry 0 is ``step_params(0, params)``.
    ``reference`` takes the ``torch.autograd.grad`` path (else ``torch.func.grad``, for ``vmap``)."""
    at = step_params or (lambda s, p: p)
    step = inner_step_reference if reference else inner_step
    state = rule.init(_split(params, fast_keys)[0])
    path = [at(0, params)]
    for s in range(steps):
        params, state = step(forward, loss_fn, at(s, params), state, x, y, rule, mode, fast_keys)
        path.append(params)
    return path


def safeguarded_step(forward: Forward, loss_fn: LossFn, params: ParamDict, state: Any, x: Tensor, y: Tensor,
                     rule: InnerRule, fast_keys: Sequence[str] | None, scale: Tensor, current: Tensor
                     ) -> tuple[ParamDict, Any, Tensor, Tensor]:
    """One inner step that never raises the support loss, a safeguard for adapting longer than the
    meta-training's inner loop did: the rule's step, shrunk by ``scale``, is kept only if the
    support loss there is at most ``current`` (the loss at ``params``); otherwise the parameters
    stay and ``scale`` halves for the next step. Returns ``(params, state, scale, current)``.
    While every step lowers the support loss, the path is exactly the plain one. No branch depends
    on a tensor's value, so it runs under ``vmap``; first order (for test time)."""
    new, state = inner_step(forward, loss_fn, params, state, x, y, rule, "first_order", fast_keys)
    full = scale == 1
    trial = {k: torch.where(full, new[k], params[k] + scale * (new[k] - params[k])) for k in params}
    loss = loss_fn(forward(trial, x), y)
    ok = loss <= current
    params = {k: torch.where(ok, trial[k], params[k]) for k in params}
    return params, state, torch.where(ok, scale, scale / 2), torch.where(ok, loss, current)


def adapt_reference(forward: Forward, loss_fn: LossFn, params: ParamDict, x: Tensor, y: Tensor,
                    rule: InnerRule, steps: int, mode: str = "second_order",
                    fast_keys: Sequence[str] | None = None) -> ParamDict:
    """``adapt`` on the reference path (``torch.autograd.grad``, one task at a time)."""
    state = rule.init(_split(params, fast_keys)[0])
    for _ in range(steps):
        params, state = inner_step_reference(forward, loss_fn, params, state, x, y, rule, mode, fast_keys)
    return params


def meta_loss(forward: Forward, loss_fn: LossFn, params: ParamDict, batch: TaskBatch,
              rule: InnerRule, steps: int, mode: str = "second_order",
              engine: str = "loop", fast_keys: Sequence[str] | None = None) -> Tensor:
    """Mean over the tasks of ``batch`` of the query loss after adapting on the support set."""
    check_mode(mode)
    if engine == "vmap":
        def one_task(p: ParamDict, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Tensor:
            return loss_fn(forward(adapt(forward, loss_fn, p, xs, ys, rule, steps, mode, fast_keys), xq), yq)

        losses = vmap(one_task, in_dims=(None, 0, 0, 0, 0), randomness="same")(
            params, batch.support_x, batch.support_y, batch.query_x, batch.query_y)
        return losses.mean()
    if engine != "loop":
        raise ValueError(f"unknown engine {engine!r}; choose 'loop' or 'vmap' (or 'auto' upstream)")
    total: Tensor | float = 0.0
    for t in range(batch.num_tasks):
        total = total + _task_loss(forward, loss_fn, params, batch, t, rule, steps, mode, fast_keys)
    return cast(Tensor, total) / batch.num_tasks


def _task_loss(forward: Forward, loss_fn: LossFn, params: ParamDict, batch: TaskBatch, t: int,
               rule: InnerRule, steps: int, mode: str, fast_keys: Sequence[str] | None) -> Tensor:
    fast = adapt_reference(forward, loss_fn, params, batch.support_x[t], batch.support_y[t],
                           rule, steps, mode, fast_keys)
    return loss_fn(forward(fast, batch.query_x[t]), batch.query_y[t])


def meta_backward(forward: Forward, loss_fn: LossFn, params: ParamDict, batch: TaskBatch,
                  rule: InnerRule, steps: int, mode: str = "second_order", engine: str = "loop",
                  fast_keys: Sequence[str] | None = None, scale: float = 1.0) -> Tensor:
    """``(scale * meta_loss(...)).backward()``, returning the (detached) meta-loss. The loop engine
    back-propagates each task as soon as its query loss is formed, so only one task's graph is
    alive at a time: peak memory is that of one task, not of the whole meta-batch."""
    if engine != "loop":
        loss = meta_loss(forward, loss_fn, params, batch, rule, steps, mode, engine, fast_keys)
        (loss * scale).backward()
        return loss.detach()
    check_mode(mode)
    n = batch.num_tasks
    total: Tensor | None = None
    for t in range(n):
        loss = _task_loss(forward, loss_fn, params, batch, t, rule, steps, mode, fast_keys)
        (loss * (scale / n)).backward()
        total = loss.detach() if total is None else total + loss.detach()
    return cast(Tensor, total) / n


def adaptation_curve(forward: Forward, loss_fn: LossFn, params: ParamDict, batch: TaskBatch,
                     rule: InnerRule, steps: int, engine: str = "loop",
                     metric: LossFn | None = None, fast_keys: Sequence[str] | None = None,
                     safeguard: bool = False, step_params: StepParams | None = None) -> Tensor:
    """Query ``metric`` (default: the loss) of each task after 0, 1, ..., ``steps`` inner updates
    (:func:`safeguarded_step` s when ``safeguard``).

    Returns a detached tensor of shape ``[num_tasks, steps + 1]``. No meta-gradient is formed.
    """
    metric = metric or loss_fn
    params = detached(params)
    # the share of the work one curve point is, for a progress bar (vmap runs ``one_task`` once)
    share = 1.0 / ((steps + 1) * (1 if engine == "vmap" else batch.num_tasks))

    def one_task(p: ParamDict, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Tensor:
        if step_params is not None:  # a per-step hook (MAML++): no safeguard
            path = adapt_path(forward, loss_fn, p, xs, ys, rule, steps, "first_order", fast_keys, step_params)
            return torch.stack([metric(forward(q, xq), yq) for q in path])
        state = rule.init(_split(p, fast_keys)[0])
        out = [metric(forward(p, xq), yq)]
        advance(share)
        if safeguard:
            scale, current = torch.ones((), dtype=xs.dtype, device=xs.device), loss_fn(forward(p, xs), ys)
        for _ in range(steps):
            if safeguard:
                p, state, scale, current = safeguarded_step(forward, loss_fn, p, state, xs, ys, rule, fast_keys,
                                                            scale, current)
            else:
                p, state = inner_step(forward, loss_fn, p, state, xs, ys, rule, "first_order", fast_keys)
            out.append(metric(forward(p, xq), yq))
            advance(share)
        return torch.stack(out)

    if engine == "vmap":
        curve = vmap(one_task, in_dims=(None, 0, 0, 0, 0), randomness="same")(
            params, batch.support_x, batch.support_y, batch.query_x, batch.query_y)
    else:
        curve = torch.stack([one_task(params, batch.support_x[t], batch.support_y[t],
                                      batch.query_x[t], batch.query_y[t])
                             for t in range(batch.num_tasks)])
    return curve.detach()
