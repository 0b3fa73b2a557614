"""Reptile: Nichol, Achiam & Schulman (2018), "On First-Order Meta-Learning Algorithms".

For each task of a meta-batch, ``inner_steps`` steps of SGD or Adam on the task's data (support
and query pooled, as the method has no support/query distinction in training) give adapted
weights ``phi``; the outer update moves the initialisation toward their mean:
``theta <- theta + epsilon * (mean(phi) - theta)``. Here ``theta - mean(phi)`` is handed to the
outer optimizer as the gradient, so plain SGD with learning rate epsilon is the paper's update
(the Omniglot presets use SGD with epsilon annealed linearly from 1 to 0) and Adam is its
adaptive variant. The logged loss is the pooled loss after adaptation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn
from torch.func import vmap

from ...batch import TaskBatch
from ...functional import InnerRule, adam, adapt, adapt_reference, detached, sgd
from ..base import Algorithm, InnerLoopSettings, check_choice


@dataclass
class ReptileSettings(InnerLoopSettings):
    """The ``algo.*`` keys of ``reptile``: the inner-loop keys and ``inner_optimizer`` (``sgd`` or ``adam``)."""
    inner_optimizer: str = "adam"    # sgd or adam

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("inner_optimizer", self.inner_optimizer, ("sgd", "adam"))


class Reptile(Algorithm):
    """Reptile: adapt to each task with a few SGD or Adam steps, then move the initialisation toward the
    mean of the adapted weights (the outer optimizer receives ``theta - mean(phi)`` as the gradient).

    Args:
        model: any ``nn.Module``.
        inner_lr: the inner optimizer's learning rate.
        inner_steps: inner steps per task.
        loss: ``"mse"`` or ``"cross_entropy"``.
        engine: ``"auto"``, ``"loop"`` or ``"vmap"``.
        inner_optimizer: ``"adam"`` or ``"sgd"``.

    References:
        Nichol, Achiam and Schulman (2018), "On First-Order Meta-Learning Algorithms", arXiv:1803.02999.
    """
    name = "reptile"
    meta_loss_is_objective = False  # the surrogate's gradient is theta - mean(phi), its value the loss

    def __init__(self, model: nn.Module, inner_lr: float = 0.001, inner_steps: int = 5,
                 loss: str = "mse", engine: str = "auto", inner_optimizer: str = "adam") -> None:
        super().__init__(model, loss=loss, inner_steps=inner_steps, engine=engine)
        if inner_optimizer not in ("sgd", "adam"):
            raise ValueError(f"unknown inner optimizer {inner_optimizer!r}; choose sgd or adam")
        self.inner_lr = float(inner_lr)
        self.inner_optimizer = inner_optimizer
        self._rule = adam(self.inner_lr, betas=(0.0, 0.999)) if inner_optimizer == "adam" else sgd(self.inner_lr)

    def inner_rule(self) -> InnerRule:
        return self._rule

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        theta = self.params()
        start = detached(theta)
        x = torch.cat([batch.support_x, batch.query_x], dim=1)
        y = torch.cat([batch.support_y, batch.query_y], dim=1)
        with torch.enable_grad():
            if self.engine == "vmap":
                def one(xt: Tensor, yt: Tensor) -> tuple[dict[str, Tensor], Tensor]:
                    phi = adapt(self._forward, self.loss_fn, start, xt, yt, self._rule, self.inner_steps,
                                "first_order")
                    return phi, self.loss_fn(self._forward(phi, xt), yt)
                phis, losses = vmap(one, randomness="same")(x, y)
                phi_mean = {k: v.mean(0) for k, v in detached(phis).items()}
                value = losses.detach().mean()
            else:
                acc = {k: torch.zeros_like(v) for k, v in start.items()}
                value = torch.zeros(())
                for t in range(batch.num_tasks):
                    leaf = {k: v.clone().requires_grad_(True) for k, v in start.items()}
                    phi = detached(adapt_reference(self._forward, self.loss_fn, leaf, x[t], y[t], self._rule,
                                                   self.inner_steps, "first_order"))
                    for k in acc:
                        acc[k] += phi[k] / batch.num_tasks
                    with torch.no_grad():
                        value = value + self.loss_fn(self._forward(phi, x[t]), y[t]) / batch.num_tasks
                phi_mean = acc
        # grad of the surrogate w.r.t. theta is theta - mean(phi); its value is the logged loss
        surrogate = cast(Tensor, sum((theta[k] * (start[k] - phi_mean[k])).sum() for k in theta))
        return surrogate - surrogate.detach() + value
