"""``LearnedOptimizer``: a meta-trained LSTM optimizer as a ``torch.optim.Optimizer`` for any model.

    opt = LearnedOptimizer.from_run("runs/l2l-mnist", model.parameters())
    for x, y in loader:
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()

Each parameter keeps its own LSTM hidden state (``opt.state[p]``), saved and restored by
``state_dict``/``load_state_dict`` together with the LSTM's weights.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..models.lstm_optimizer import LSTMOptimizerNet


class LearnedOptimizer(torch.optim.Optimizer):
    """Applies ``net`` (a meta-trained :class:`LSTMOptimizerNet`) coordinatewise to the gradients."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], net: LSTMOptimizerNet) -> None:
        super().__init__(params, defaults={})
        self.net = net
        for p in self.net.parameters():
            p.requires_grad_(False)

    @classmethod
    def from_run(cls, run: str | Path, params: Iterable[Tensor] | Iterable[dict[str, Any]],
                 checkpoint: str = "best") -> LearnedOptimizer:
        """The learned optimizer of a ``metalearn train l2l-*`` run folder."""
        from ..runs import Run
        from ..training.loading import load_algorithm
        algo = load_algorithm(Run.open(run), which=checkpoint)
        if not isinstance(algo.model, LSTMOptimizerNet):
            raise TypeError(f"{run} is not a learned-optimizer run (its algorithm is {algo.name})")
        return cls(params, algo.model)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                g = p.grad.reshape(-1).to(next(self.net.parameters()).dtype)
                if not st:
                    st.update(zip(("h1", "c1", "h2", "c2"), self.net.initial_state(g.numel(), g)))
                delta, new = self.net.step(g, (st["h1"], st["c1"], st["h2"], st["c2"]))
                st.update(zip(("h1", "c1", "h2", "c2"), new))
                p.add_(delta.view_as(p).to(p.dtype))
        return loss

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["net"] = self.net.state_dict()
        sd["net_config"] = {"hidden": self.net.hidden, "preprocess_p": self.net.preprocess_p,
                            "output_scale": self.net.output_scale}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        self.net.load_state_dict(state_dict.pop("net"))
        state_dict.pop("net_config", None)
        super().load_state_dict(state_dict)
