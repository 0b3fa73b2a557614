"""Optimizee task families of Andrychowicz et al. (2016): each task is an optimisation problem,
and a batch holds ``B`` independent problems whose parameters carry a leading problem dimension,
so one coordinatewise LSTM call updates all of them.

* ``QuadraticProblems``: ``f(theta) = ||W theta - y||^2`` with ``W``, ``y`` and ``theta_0``
  standard Gaussian, 10-dimensional by default (section 3.1).
* ``MLPProblems``: an MLP on MNIST, one hidden layer of 20 sigmoid units by default, cross-entropy
  on minibatches of 128 (section 3.2); a problem is an initialisation plus its minibatch sequence.
  Other widths, depths and activations give the paper's generalisation tests.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...batch import move
from ...errors import ConfigError
from ...functional import ParamDict
from ...protocols import Metric

ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


@dataclass(frozen=True)
class OptimizeeBatch:
    """``B`` problems: their initial parameters and their data, each with a leading ``B`` dimension."""

    params: ParamDict
    data: dict[str, Tensor]

    @property
    def num_tasks(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           non_blocking: bool = False) -> OptimizeeBatch:
        return OptimizeeBatch({k: move(v, device, dtype, non_blocking) for k, v in self.params.items()},
                              {k: move(v, device, dtype, non_blocking) for k, v in self.data.items()})


@dataclass
class OptimizeeSettings:
    """The ``task.*`` keys of every optimizee family: ``horizon`` optimisation steps per problem,
    meta-trained by truncated back-propagation through ``unroll`` steps at a time."""

    horizon: int = 100
    unroll: int = 20


@dataclass
class QuadraticSettings(OptimizeeSettings):
    """dim: the dimension of the quadratic problems (Andrychowicz et al. use 10)."""

    dim: int = 10


@dataclass
class MLPProblemSettings(OptimizeeSettings):
    """The MNIST MLP optimizee: its hidden sizes, activation and minibatch size."""

    mlp_hidden: list[int] = field(default_factory=lambda: [20])
    mlp_activation: str = "sigmoid"
    minibatch: int = 128


class OptimizeeProblems:
    """What every optimizee family declares (metalearn.protocols.TaskFamily): its tasks are
    optimisation problems, scored by the loss a learned optimizer reaches on them."""

    loss = "optimizee"
    kind = "optimizer"
    metric = Metric("final loss", higher_is_better=False)
    evaluator = "optimizers"
    pictures = ("loss_curves",)
    adapt_input = None
    baseline = None
    unroll = 20     # meta-training back-propagates through unrolls of this many steps (truncated BPTT)
    horizon = 100   # optimisation steps per problem


class QuadraticProblems(OptimizeeProblems):
    """Random quadratics ``f(theta) = ||W theta - y||^2`` of Andrychowicz et al. (2016, section 3.1): the
    optimizees a learned optimizer is meta-trained on.

    Args:
        dim: the number of parameters of each problem (10 in the paper).
        horizon: optimizer steps per problem.

    References:
        Andrychowicz et al. (2016), "Learning to learn by gradient descent by gradient descent", NeurIPS.
    """
    settings = QuadraticSettings

    def __init__(self, dim: int = 10, horizon: int = 100) -> None:
        if dim <= 0 or horizon <= 0:
            raise ConfigError(f"quadratic problems need positive dim and horizon, got {dim}, {horizon}")
        self.dim, self.horizon = dim, horizon

    @classmethod
    def from_config(cls, t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                    cross_domain: bool = False) -> QuadraticProblems:
        family = cls(t.dim, horizon or t.horizon)
        family.unroll = t.unroll
        return family

    def sample(self, n: int, generator: torch.Generator | None = None) -> OptimizeeBatch:
        d = self.dim
        return OptimizeeBatch({"theta": torch.randn(n, d, generator=generator)},
                              {"W": torch.randn(n, d, d, generator=generator),
                               "y": torch.randn(n, d, generator=generator)})

    def losses(self, params: ParamDict, data: dict[str, Tensor], t: int = 0) -> Tensor:
        r = torch.bmm(data["W"], params["theta"].unsqueeze(-1)).squeeze(-1) - data["y"]
        return r.pow(2).sum(-1)

    final_loss = losses

    def __repr__(self) -> str:
        return f"QuadraticProblems(dim={self.dim}, horizon={self.horizon})"


@lru_cache(maxsize=2)
def _mnist_flat(data_dir: str | None) -> tuple[Tensor, Tensor]:
    """MNIST training images as float ``[60000, 784]`` in [0, 1] and their labels (cached)."""
    from ...data.mnist import load_mnist
    ds = load_mnist(data_dir, "train")
    labels = torch.searchsorted(ds.offsets, torch.arange(len(ds.images)), right=True) - 1
    return ds.images.flatten(1).float().div_(255), labels


class MLPProblems(OptimizeeProblems):
    """A small MLP on MNIST as the optimizee (Andrychowicz et al. 2016, section 3.2), with the paper's
    generalisation tests (more hidden units, two layers, ReLU) as evaluation variants.

    References:
        Andrychowicz et al. (2016), "Learning to learn by gradient descent by gradient descent", NeurIPS.
    """
    settings = MLPProblemSettings
    # the paper's generalisation tests (section 3.2): the evaluation also runs these task settings
    variants = (("40 hidden units", {"mlp_hidden": [40]}), ("2 hidden layers", {"mlp_hidden": [20, 20]}),
                ("ReLU", {"mlp_activation": "relu"}))

    def __init__(self, hidden: Sequence[int] = (20,), activation: str = "sigmoid", minibatch: int = 128,
                 horizon: int = 100, data_dir: str | Path | None = None, eval_size: int = 1024) -> None:
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
        if minibatch <= 0 or horizon <= 0 or any(h <= 0 for h in hidden):
            raise ConfigError("MLP problems need positive minibatch, horizon and hidden sizes")
        self.images, self.labels = _mnist_flat(None if data_dir is None else str(data_dir))
        self.hidden, self.activation, self.minibatch, self.horizon = list(hidden), activation, minibatch, horizon
        self.sizes = [784, *self.hidden, 10]
        self.eval_idx = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(0))[:eval_size]

    @classmethod
    def from_config(cls, t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                    cross_domain: bool = False) -> MLPProblems:
        family = cls(t.mlp_hidden, t.mlp_activation, t.minibatch, horizon or t.horizon, t.data_dir)
        family.unroll = t.unroll
        return family

    def sample(self, n: int, generator: torch.Generator | None = None) -> OptimizeeBatch:
        params = {}
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            bound = a ** -0.5
            params[f"w{i}"] = (torch.rand(n, b, a, generator=generator) * 2 - 1) * bound
            params[f"b{i}"] = (torch.rand(n, b, generator=generator) * 2 - 1) * bound
        idx = torch.randint(len(self.images), (n, self.horizon, self.minibatch), generator=generator)
        return OptimizeeBatch(params, {"idx": idx})

    def _forward(self, params: ParamDict, x: Tensor) -> Tensor:
        act = ACTIVATIONS[self.activation]
        layers = len(self.sizes) - 1
        for i in range(layers):
            x = torch.baddbmm(params[f"b{i}"].unsqueeze(1), x, params[f"w{i}"].transpose(1, 2))
            if i < layers - 1:
                x = act(x)
        return x

    def _on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The images and labels on ``device`` (copied there once, e.g. to the GPU)."""
        if self.images.device != device:
            self.images, self.labels = self.images.to(device), self.labels.to(device)
            self.eval_idx = self.eval_idx.to(device)
        return self.images, self.labels

    def _ce(self, params: ParamDict, idx: Tensor) -> Tensor:
        images, labels = self._on(idx.device)
        x = images[idx]                                                            # [B, m, 784]
        logits = self._forward(params, x)
        y = labels[idx]
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(idx.shape).mean(1)

    def losses(self, params: ParamDict, data: dict[str, Tensor], t: int) -> Tensor:
        """Minibatch cross-entropy of each problem at optimisation step ``t``."""
        return self._ce(params, data["idx"][:, t % data["idx"].shape[1]])

    def final_loss(self, params: ParamDict, data: dict[str, Tensor], t: int = 0) -> Tensor:
        """Training cross-entropy on a fixed set of 1,024 MNIST training images (less noisy)."""
        first = next(iter(params.values()))
        self._on(first.device)
        return self._ce(params, self.eval_idx.unsqueeze(0).expand(first.shape[0], -1))

    def __repr__(self) -> str:
        return f"MLPProblems(hidden={self.hidden}, activation={self.activation}, minibatch={self.minibatch})"
