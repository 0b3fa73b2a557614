"""Meta-training the learned optimizer (Andrychowicz et al. 2016): optimisation runs of
``horizon`` steps on freshly sampled problems, cut into truncated unrolls of ``unroll`` steps;
each unroll's loss ``mean_t f(theta_t)`` is back-propagated into the LSTM, then the optimizee
state is detached and carried into the next unroll. By default the optimizee's second derivatives
are dropped, as in the paper (``mode="second_order"`` keeps them).

The meta-objective is the paper's mean loss along the trajectory (``objective="loss"``, all
weights ``w_t = 1``), or its mean log (``objective="log_loss"``). The mean loss is dominated by
the large losses of the first steps, so an optimizer trained on it buys early progress and may
give up the final loss; the log counts a relative improvement the same at every step, so late
refinement weighs as much as early progress (our option, not the paper's).

One trainer step is one unroll, so the ordinary trainer gives runs, checkpoints, logging, resume
and validation. The optimizee state in flight is part of the checkpoint (``get_extra_state``), so a
resumed run continues mid-run exactly.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..functional import MODES, InnerRule, check_mode, detached
from ..models.lstm_optimizer import LSTMOptimizerNet, lstm_rule
from ..protocols import OptimizeeFamily, TaskFamily
from ..tasks.optimizees.optimize import no_grad_rule, optimize
from ..tasks.optimizees.problems import OptimizeeBatch
from .base import Algorithm, check_choice

OBJECTIVES = ("loss", "log_loss")


@dataclass
class L2LSettings:
    """The ``algo.*`` keys of ``l2l``: ``mode`` (``first_order``, the paper's, or ``second_order``) and
    ``objective`` (``loss``: the mean loss along the run, or ``log_loss``).
    """
    mode: str = "first_order"        # second_order keeps the optimizee's second derivatives
    objective: str = "loss"          # loss (the paper: mean f along the run) or log_loss (mean log f)

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        check_choice("objective", self.objective, OBJECTIVES)


class L2L(Algorithm):
    """Meta-learns the LSTM optimizer ``model`` on problems of ``family``."""

    name = "l2l"
    task_kinds = ("optimizer",)
    supports_safeguard = False  # it is the optimizer; the safeguard is for inner loops of a model

    def __init__(self, model: LSTMOptimizerNet, family: OptimizeeFamily | None = None, horizon: int = 100,
                 unroll: int = 20, mode: str = "first_order", objective: str = "loss") -> None:
        super().__init__(model, loss="mse", inner_steps=horizon, engine="loop")
        check_mode(mode)
        if objective not in OBJECTIVES:
            raise ConfigError(f"unknown l2l objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
        self.family, self.horizon, self.unroll, self.mode = family, horizon, unroll, mode
        self.objective = objective
        self._run: dict[str, Any] | None = None

    @classmethod
    def from_settings(cls, model: nn.Module, family: TaskFamily, settings: Any) -> L2L:
        """An optimizee family's ``horizon`` and ``unroll`` set the runs and their truncation."""
        if not isinstance(model, LSTMOptimizerNet):
            raise ConfigError("the l2l algorithm meta-trains an LSTM optimizer; use --set model.name=lstm_optimizer")
        problems = cast(OptimizeeFamily, family)
        return cls(model, family=problems, horizon=problems.horizon, unroll=problems.unroll, mode=settings.mode,
                   objective=settings.objective)

    def inner_rule(self) -> InnerRule:
        return lstm_rule(self.model)  # type: ignore[arg-type]

    @property
    def problems(self) -> OptimizeeFamily:
        """The optimizee family it meta-trains and is scored on."""
        if self.family is None:
            raise ConfigError("this L2L has no optimizee family; give L2L(model, family=...) or set .family")
        return self.family

    # its meta-batches are optimizee problems (task_kinds), not TaskBatches, as in adaptation_curve
    def meta_loss(self, batch: OptimizeeBatch) -> Tensor:  # type: ignore[override]
        run = self._run
        if run is None or run["t"] >= self.horizon:
            params = detached(batch.params)
            run = {"t": 0, "params": params, "state": self.inner_rule().init(params), "data": batch.data}
        rule, second = self.inner_rule(), self.mode == "second_order"
        params = {k: v.detach().requires_grad_(True) for k, v in run["params"].items()}
        state, t = run["state"], run["t"]
        steps = min(self.unroll, self.horizon - t)
        total: Tensor | float = 0.0
        log_objective = self.objective == "log_loss"

        def term(f: Tensor) -> Tensor:
            return f.clamp_min(1e-30).log().mean() if log_objective else f.mean()

        for i in range(steps):
            loss = self.problems.losses(params, run["data"], t + i)
            if i > 0:
                total = total + term(loss)
            grads = torch.autograd.grad(loss.sum(), list(params.values()), create_graph=second, retain_graph=True)
            g = {k: (gi if second else gi.detach()) for k, gi in zip(params, grads)}
            params, state = rule.update(g, state, params)
        total = (total + term(self.problems.losses(params, run["data"], t + steps))) / steps
        self._run = {"t": t + steps, "params": detached(params), "state": tuple(s.detach() for s in state),
                     "data": run["data"]}
        assert isinstance(total, Tensor)
        return total

    def adaptation_curve(self, batch: OptimizeeBatch, steps: int,  # type: ignore[override]
                         metric: Callable[[Tensor, Tensor], Tensor] | None = None) -> Tensor:
        """Each problem's minibatch loss before each of ``steps`` learned-optimizer steps; the last
        entry is the loss after the last step on the family's fixed evaluation data (``final_loss``:
        1,024 training images for MNIST rather than one minibatch of 128), the number that
        validation, and so the best checkpoint, goes by."""
        params, curve = optimize(self.problems, batch, no_grad_rule(self.inner_rule()), steps)
        with torch.no_grad():
            curve[:, -1] = self.problems.final_loss(params, batch.data)
        return curve

    def adapt(self, x: Any, y: Any = None, steps: int | None = None) -> Any:
        raise NotImplementedError("use LearnedOptimizer.from_run(RUN) to optimise your own model")

    # the optimizee state in flight travels with the checkpoint
    def get_extra_state(self) -> dict[str, Any]:
        if self._run is None:
            return {}
        r = self._run
        return {"t": torch.tensor(r["t"]), "params": r["params"], "state": list(r["state"]), "data": r["data"]}

    def set_extra_state(self, extra: dict[str, Any]) -> None:
        if not extra:
            self._run = None
            return
        self._run = {"t": int(extra["t"]), "params": dict(extra["params"]), "state": tuple(extra["state"]),
                     "data": dict(extra["data"])}
