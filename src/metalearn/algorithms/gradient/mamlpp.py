"""MAML++: Antoniou, Edwards & Storkey (2019), "How to train your MAML", ICLR.

MAML with the paper's fixes, each a switch:

* multi-step loss (MSL): the query loss after *every* inner step, weighted; the weights start
  uniform and anneal over ``msl_steps`` meta-steps until only the final step counts (non-final
  weights decay to a floor of 0.03 / steps, as in the authors' code);
* per-layer per-step learned inner rates (LSLR), initialised to ``inner_lr``;
* per-step BatchNorm weights and biases (BNWB): inner step ``s`` uses its own copy; BatchNorm
  parameters are not adapted in the inner loop;
* derivative-order annealing (DA): first order for the first ``first_order_steps`` meta-steps,
  second order after;
* cosine annealing of the outer learning rate: ``train.lr_schedule=cosine`` in the trainer.

Steps beyond the trained number (e.g. ten at test after five in training) reuse the last step's
rate and BatchNorm copy.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn
from torch.func import vmap

from ...batch import TaskBatch, TaskTree
from ...functional import InnerRule, ParamDict, adapt_path, adaptation_curve, detached, detached_rule, supervised
from ...functional.params import param_key
from ...functional.rules import per_parameter_sgd
from ..base import Algorithm, Learner, ModeSettings


@dataclass
class MAMLppSettings(ModeSettings):
    """The ``algo.*`` keys of ``mamlpp``: each of the paper's fixes as a switch, and the number of
    meta-steps over which the multi-step loss anneals (``msl_steps``).
    """
    msl_steps: int = 5000            # meta-steps over which the multi-step loss anneals
    first_order_steps: int = 0       # derivative-order annealing: first order before this step
    multi_step_loss: bool = True
    learn_lrs: bool = True
    per_step_bn: bool = True


def batchnorm_parameter_names(model: nn.Module) -> list[str]:
    """Names of the affine parameters of every BatchNorm layer of ``model``, which MAML++ keeps one copy of
    per inner step (BNWB) instead of adapting them.

    Args:
        model: any module.

    Returns:
        ``["features.1.weight", "features.1.bias", ...]`` in module order.
    """
    names = []
    for mname, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            names += [f"{mname}.weight" if mname else "weight", f"{mname}.bias" if mname else "bias"]
    return names


class MAMLpp(Algorithm):
    """MAML++: MAML with the multi-step loss, learned per-layer per-step inner rates, per-step BatchNorm
    weights and derivative-order annealing, each a switch (see the module's docstring).

    Args:
        model: any ``nn.Module`` whose forward is a function of its parameters.
        inner_lr: the initial inner-loop step size of every layer and step.
        inner_steps: inner gradient steps during meta-training (at least one).
        loss: ``"mse"`` or ``"cross_entropy"``.
        engine: ``"auto"``, ``"loop"`` or ``"vmap"``.
        msl_steps: meta-steps over which the multi-step loss weights anneal to the last step alone.
        first_order_steps: first-order meta-gradients before this meta-step (derivative-order annealing).
        multi_step_loss: use the multi-step loss (MSL).
        learn_lrs: learn per-layer per-step inner rates (LSLR).
        per_step_bn: one copy of the BatchNorm weights and biases per inner step (BNWB).
        mode: ``"second_order"`` or ``"first_order"`` after the annealing.

    Raises:
        ValueError: for fewer than one inner step.

    References:
        Antoniou, Edwards and Storkey (2019), "How to train your MAML", ICLR.
    """
    name = "mamlpp"
    supports_safeguard = False  # its own inner loop (per-step rates and BatchNorm weights)

    def __init__(self, model: nn.Module, inner_lr: float = 0.1, inner_steps: int = 5, loss: str = "mse",
                 engine: str = "auto", msl_steps: int = 5000, first_order_steps: int = 0,
                 multi_step_loss: bool = True, learn_lrs: bool = True, per_step_bn: bool = True,
                 mode: str = "second_order") -> None:
        super().__init__(model, loss=loss, inner_steps=inner_steps, engine=engine)
        if inner_steps < 1:
            raise ValueError("MAML++ needs at least one inner step")
        self.inner_lr = float(inner_lr)
        self.msl_steps, self.first_order_steps = int(msl_steps), int(first_order_steps)
        self.multi_step_loss, self.per_step_bn = multi_step_loss, per_step_bn
        self.base_mode = mode
        params = self.params()
        self._bn = batchnorm_parameter_names(model) if per_step_bn else []
        self._fast = [n for n in params if n not in self._bn]
        self.lrs = nn.ParameterDict({param_key(n): nn.Parameter(torch.full((inner_steps,), self.inner_lr),
                                                           requires_grad=learn_lrs) for n in self._fast})
        # copies of the BatchNorm parameters for inner steps 1..S-1 (step 0 uses the model's own)
        self.bn_steps = nn.ParameterDict({param_key(n): nn.Parameter(params[n].detach().clone().unsqueeze(0)
                                                                .repeat(inner_steps - 1, 1))
                                          for n in self._bn} if inner_steps > 1 else {})
        self._progress = 0

    # -- schedules ---------------------------------------------------------------------------
    def on_step(self, step: int, total: int) -> None:
        self._progress = step

    def label(self) -> str:
        return self.name + (" (first order)" if self.base_mode == "first_order" else "")

    @property
    def mode(self) -> str:
        return "first_order" if self._progress < self.first_order_steps else self.base_mode

    def step_weights(self) -> Tensor:
        """Multi-step loss weights for the current meta-step (sum to one)."""
        s = self.inner_steps
        w = torch.zeros(s)
        if not self.multi_step_loss or s == 1 or self._progress >= self.msl_steps:
            w[-1] = 1.0
            return w
        decay = (1.0 / s) * self._progress / max(self.msl_steps, 1)
        floor = 0.03 / s
        w[:-1] = max(1.0 / s - decay, floor)
        w[-1] = 1.0 - w[:-1].sum()
        return w

    # -- the inner loop ---------------------------------------------------------------------
    def inner_rule(self) -> InnerRule:
        return per_parameter_sgd({n: self.lrs[param_key(n)] for n in self._fast}, per_step=True)

    def fast_keys(self) -> list[str]:
        return self._fast

    def _at_step(self, params: ParamDict, s: int, bn: dict[str, Tensor]) -> ParamDict:
        """``params`` with the BatchNorm weights of inner step ``s`` (the model's own for step 0)."""
        idx = min(s, self.inner_steps - 1) - 1
        if idx < 0 or not bn:
            return params
        return {**params, **{n: bn[n][idx] for n in self._bn}}

    def _hook(self, bn: dict[str, Tensor]) -> Callable[[int, ParamDict], ParamDict]:
        """The inner loop's per-step hook: step ``s`` starts from its own BatchNorm weights."""
        return lambda s, p: self._at_step(p, s, bn)

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        weights = self.step_weights().to(batch.query_x.device)
        params, rule, mode = self.params(), self.inner_rule(), self.mode
        hook = self._hook({n: self.bn_steps[param_key(n)] for n in self._bn if param_key(n) in self.bn_steps})
        steps = self.inner_steps

        def one(xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor, reference: bool) -> Tensor:
            path = adapt_path(self._forward, self.loss_fn, params, xs, ys, rule, steps, mode, self._fast,
                              step_params=hook, reference=reference)
            losses = torch.stack([self.loss_fn(self._forward(p, xq), yq) for p in path[1:]])
            return (weights * losses).sum()   # the multi-step loss

        if self.engine == "vmap":
            per_task = vmap(lambda xs, ys, xq, yq: one(xs, ys, xq, yq, False), randomness="same")(
                batch.support_x, batch.support_y, batch.query_x, batch.query_y)
            return per_task.mean()
        total: Tensor | float = 0.0
        for t in range(batch.num_tasks):
            total = total + one(batch.support_x[t], batch.support_y[t], batch.query_x[t], batch.query_y[t], True)
        return cast(Tensor, total) / batch.num_tasks

    # -- adaptation at test time -------------------------------------------------------------
    def _frozen(self) -> tuple[ParamDict, Callable[[int, ParamDict], ParamDict], InnerRule]:
        return (detached(self.params()),
                self._hook({n: self.bn_steps[param_key(n)].detach()
                            for n in self._bn if param_key(n) in self.bn_steps}),
                detached_rule(self.inner_rule()))

    def adapt(self, x: Tensor, y: Tensor, steps: int | None = None) -> Learner:
        steps = self.inner_steps if steps is None else steps
        params, hook, rule = self._frozen()
        with torch.enable_grad():
            path = adapt_path(self._forward, self.loss_fn, params, x, y, rule, steps, "first_order", self._fast,
                              step_params=hook)
        return Learner(self.model, path[-1])

    def adaptation_curve(self, batch: TaskBatch | TaskTree, steps: int,
                         metric: Callable[[Tensor, Tensor], Tensor] | str | None = None) -> Tensor:
        batch, metric = supervised(self.name, batch, metric)
        params, hook, rule = self._frozen()
        with torch.enable_grad():
            return adaptation_curve(self._forward, self.loss_fn, params, batch, rule, steps, engine="loop",
                                    metric=metric, fast_keys=self._fast, step_params=hook)
