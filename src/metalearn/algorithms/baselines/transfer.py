"""Transfer-learning baselines of Chen, Liu, Kira, Wang & Huang (2019), "A Closer Look at
Few-shot Classification", ICLR: what meta-learning buys over plain training.

* ``transfer``: pretrain the encoder with a classifier over *all* meta-training classes (ordinary
  mini-batch supervised learning, no episodes); at test, freeze the encoder and fit a new head on
  the support set: a cosine classifier (their Baseline++, the default) or a linear one (Baseline),
  trained with SGD (momentum 0.9) for ``inner_steps`` steps (100 by default).
* ``scratch``: the same network, randomly initialised, trained on the support set alone with Adam.
  It needs no meta-training; ``metalearn compare --scratch`` adds it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...batch import TaskBatch, TaskTree
from ...errors import ConfigError
from ...functional import InnerRule, adam, momentum_sgd, supervised
from ...functional.inner_loop import loss_step
from ...protocols import SupervisedFamily, TaskFamily
from ..base import Algorithm, InnerLoopSettings, check_choice


@dataclass
class TransferSettings(InnerLoopSettings):
    """The ``algo.*`` keys of ``transfer``: the inner-loop keys and ``classifier`` (``cosine``, Baseline++,
    or ``linear``, Baseline; Chen et al. 2019).
    """
    classifier: str = "cosine"       # cosine (Baseline++) or linear (Baseline)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("classifier", self.classifier, ("cosine", "linear"))


ScratchSettings = InnerLoopSettings


class PooledBatches:
    """Plain labelled mini-batches over every class of a few-shot task family's dataset, as a
    one-task ``TaskBatch`` (support = the batch, labels = global class ids)."""

    def __init__(self, tasks: Any) -> None:
        self.dataset = tasks.dataset
        self.num_classes = self.dataset.num_classes

    def sample(self, n: int, generator: torch.Generator | None = None) -> TaskBatch:
        ds = self.dataset
        idx = torch.randint(len(ds.images), (n,), generator=generator)
        labels = torch.searchsorted(ds.offsets, idx, right=True) - 1
        x = ds.images[idx].float().div_(255).unsqueeze(0)
        y = labels.unsqueeze(0)
        return TaskBatch(x, y, x[:, :0], y[:, :0])


def head_logits(features: Tensor, weight: Tensor, bias: Tensor | None, cosine: bool, scale: float = 10.0) -> Tensor:
    """Logits of a classification head on encoder ``features``.

    Args:
        features: ``[n, d]`` encoder outputs.
        weight: ``[classes, d]`` head weights.
        bias: ``[classes]`` (the linear head) or None (the cosine head has none).
        cosine: True for Baseline++'s cosine classifier, ``scale`` times the cosine similarity.
        scale: the cosine classifier's temperature.

    Returns:
        ``[n, classes]`` logits.
    """
    if cosine:
        return scale * F.normalize(features, dim=-1) @ F.normalize(weight, dim=-1).T
    return features @ weight.T + cast(Tensor, bias)  # the linear head has a bias


class HeadLearner:
    """A frozen encoder with a head fitted on one task's support set: what ``Transfer.adapt`` returns.
    Calling it on inputs gives the head's logits (no gradients).
    """
    def __init__(self, encoder: nn.Module, weight: Tensor, bias: Tensor | None, cosine: bool) -> None:
        self.encoder, self.weight, self.bias, self.cosine = encoder, weight, bias, cosine

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        return head_logits(self.encoder(x).flatten(1), self.weight, self.bias, self.cosine)


class Transfer(Algorithm):
    """The transfer baseline (Baseline and Baseline++): pretrain the encoder with a classifier over all
    meta-training classes, then at test fit a new head on the support set with the encoder frozen.

    Build it with :meth:`from_settings` (the classifier's size comes from the family), or through
    ``metalearn train omniglot-5w1s-transfer``.

    References:
        Chen, Liu, Kira, Wang and Huang (2019), "A Closer Look at Few-shot Classification", ICLR.
    """
    name = "transfer"
    supports_safeguard = False  # fits a new head with its own loop
    task_kinds = ("classification",)
    encoder_only = True

    @classmethod
    def from_settings(cls, model: nn.Module, family: TaskFamily, settings: Any) -> Transfer:
        """The classifier covers every meta-training class (a few-shot family's ``num_classes``);
        its input is the encoder's output."""
        shape = cast(SupervisedFamily, family).input_shape
        with torch.no_grad():
            probe = torch.zeros(2, *shape, dtype=next(model.parameters()).dtype)
            feature_dim = model(probe).flatten(1).shape[1]
        num_classes = int(getattr(family, "num_classes", 1))
        return cls(model, num_classes=num_classes, feature_dim=feature_dim, head=settings.classifier,
                   inner_lr=settings.inner_lr, inner_steps=settings.inner_steps)

    def __init__(self, model: nn.Module, num_classes: int = 1, feature_dim: int = 64, head: str = "cosine",
                 inner_lr: float = 0.01, inner_steps: int = 100) -> None:
        super().__init__(model, loss="cross_entropy", inner_steps=inner_steps, engine="loop")
        if head not in ("cosine", "linear"):
            raise ValueError(f"unknown head {head!r}; choose cosine or linear")
        self.cosine = head == "cosine"
        self.inner_lr = float(inner_lr)
        self.classifier = nn.Linear(feature_dim, num_classes, bias=not self.cosine)

    def inner_rule(self) -> InnerRule:
        return momentum_sgd(self.inner_lr, 0.9)

    def training_tasks(self, tasks: Any) -> PooledBatches:
        if not hasattr(tasks, "dataset"):
            raise ConfigError("the transfer baseline needs a classification task family "
                              "(omniglot, mnist, image_folder)")
        if tasks.dataset.num_classes != self.classifier.out_features:
            raise ConfigError(f"transfer: the classifier has {self.classifier.out_features} outputs but the "
                              f"training split has {tasks.dataset.num_classes} classes")
        return PooledBatches(tasks)

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        x, y = batch.support_x[0], batch.support_y[0]
        f = self.model(x).flatten(1)
        return F.cross_entropy(head_logits(f, self.classifier.weight, self.classifier.bias, self.cosine), y)

    def _fit_head(self, fs: Tensor, ys: Tensor, steps: int, fq: Tensor | None = None, yq: Tensor | None = None,
                  metric: Callable[[Tensor, Tensor], Tensor] | None = None
                  ) -> tuple[Tensor, Tensor | None, list[Tensor]]:
        """A new head on frozen features ``fs``, fitted with the inner rule (SGD with momentum 0.9);
        with ``metric``, the query metric before and after each step."""
        ways = int(ys.max()) + 1
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(ways, fs.shape[1], generator=gen).to(fs)
        # unit rows for the cosine head (tiny weights would give huge normalised gradients)
        head = {"weight": F.normalize(w, dim=-1) if self.cosine else 0.01 * w}
        if not self.cosine:
            head["bias"] = torch.zeros(ways, dtype=fs.dtype, device=fs.device)
        rule = self.inner_rule()
        state = rule.init(head)
        curve = []

        def loss_of(p: dict[str, Tensor]) -> Tensor:
            return F.cross_entropy(head_logits(fs, p["weight"], p.get("bias"), self.cosine), ys)

        for s in range(steps + 1):
            if metric is not None:  # given with the query features and labels
                curve.append(metric(head_logits(cast(Tensor, fq), head["weight"], head.get("bias"), self.cosine),
                                    cast(Tensor, yq)))
            if s == steps:
                break
            leaf = {k: v.requires_grad_(True) for k, v in head.items()}
            head, state = loss_step(loss_of, leaf, state, rule, "first_order")
            head = {k: v.detach() for k, v in head.items()}
        return head["weight"], head.get("bias"), curve

    def adapt(self, x: Tensor, y: Tensor, steps: int | None = None) -> HeadLearner:  # type: ignore[override]
        steps = self.inner_steps if steps is None else steps
        with torch.no_grad():
            fs = self.model(x).flatten(1)
        with torch.enable_grad():
            w, b, _ = self._fit_head(fs, y, steps)
        return HeadLearner(self.model, w, b, self.cosine)

    def adaptation_curve(self, batch: TaskBatch | TaskTree, steps: int,
                         metric: Callable[[Tensor, Tensor], Tensor] | str | None = None) -> Tensor:
        """Query metric after 0..``steps`` head-training steps (before: an untrained head)."""
        batch, metric = supervised(self.name, batch, metric)
        metric = metric or self.loss_fn
        rows = []
        for t in range(batch.num_tasks):
            xs, ys, xq, yq = batch.support_x[t], batch.support_y[t], batch.query_x[t], batch.query_y[t]
            with torch.no_grad():
                f = self.model(torch.cat([xs, xq])).flatten(1)
            with torch.enable_grad():
                _, _, curve = self._fit_head(f[: len(xs)], ys, steps, f[len(xs):], yq, metric)
            rows.append(torch.stack(curve).detach())
        return torch.stack(rows)


class Scratch(Algorithm):
    """The network trained from a random initialisation on the support set alone (Adam)."""

    name = "scratch"
    trainable = False

    def __init__(self, model: nn.Module, inner_lr: float = 0.001, inner_steps: int = 100,
                 loss: str = "cross_entropy", engine: str = "auto") -> None:
        super().__init__(model, loss=loss, inner_steps=inner_steps, engine=engine)
        self.inner_lr = float(inner_lr)

    def inner_rule(self) -> InnerRule:
        return adam(self.inner_lr)

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        raise ConfigError("the from-scratch baseline has nothing to meta-train; add it to a comparison "
                          "with 'metalearn compare RUN ... --scratch'")
