"""What every algorithm shares: the model it meta-learns, its loss, and adaptation to a new task."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..batch import TaskBatch, TaskTree
from ..errors import ConfigError
from ..functional import (
    ENGINES,
    MODES,
    InnerRule,
    ParamDict,
    adapt,
    adaptation_curve,
    choose_engine,
    detached,
    make_forward,
    named_params,
)
from ..functional.rules import detached_rule
from ..protocols import TaskFamily, declared

LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": F.mse_loss,
    "cross_entropy": F.cross_entropy,
}


def check_choice(key: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    """A ConfigError naming ``algo.KEY`` and the valid choices when ``value`` is not one of them."""
    if value not in choices:
        raise ConfigError(f"unknown algo.{key} {value!r}; choose one of: {', '.join(choices)}")


@dataclass
class InnerLoopSettings:
    """What a config gives an algorithm with an inner loop (read from its ``algo`` section)."""

    inner_lr: float = 0.01
    inner_steps: int = 1
    engine: str = "auto"

    def __post_init__(self) -> None:
        check_choice("engine", self.engine, ENGINES)


@dataclass
class ModeSettings(InnerLoopSettings):
    """An inner loop that is differentiated through: second order, or first order."""

    mode: str = "second_order"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("mode", self.mode, MODES)


class OuterPart(Protocol):
    """The outer step of a meta-learner as a part it is configured with (``MAML(outer=...)``):
    one task's outer loss (an :data:`~metalearn.functional.Objective`: from the pre-update
    parameters, the adapted ones and the task's support and query data) and the optimizer that
    takes the outer step. A part whose step is bounded (a trust region) also has
    ``constraint``, an objective of the same shape whose mean over tasks the step keeps small
    (the KL of the post-update policies): see :mod:`metalearn.algorithms.rl.outer`."""

    def objective(self, forward: Callable[[ParamDict, Any], Any], task_loss: Any, params: ParamDict,
                  fast: ParamDict, support: Any, query: Any) -> Tensor: ...

    def optimizer(self, params: Sequence[Tensor], lr: float) -> torch.optim.Optimizer: ...


def get_loss(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss function registered as ``name`` (``"mse"`` or ``"cross_entropy"``).

    Args:
        name: a key of :data:`LOSSES`.

    Returns:
        ``loss(outputs, targets)``, a scalar tensor.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None


class Learner:
    """A model adapted to one task: callable on inputs, holding its own detached parameters.

    It shares the module (the architecture) with the algorithm but never mutates it, and keeps no
    autograd graph, so any number of learners can be made without memory growth.
    """

    def __init__(self, model: nn.Module, params: ParamDict) -> None:
        self.model = model
        self.params = detached(params)
        self._forward = make_forward(model)

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        return self._forward(self.params, x)

    predict = __call__


class Algorithm(nn.Module):
    """Base class: an ``nn.Module`` whose parameters are the meta-parameters (the model's and any
    learned inner-loop hyper-parameters), so that ``state_dict`` is the whole checkpoint.

    A subclass says which parameters adapt (``fast_keys``), with which rule (``inner_rule``), and
    how the outer loss is formed (``meta_loss``).
    """

    name = "algorithm"
    # declarations the generic builder, evaluation and CLI read (never the algorithm's name)
    task_kinds: tuple[str, ...] = ("regression", "classification")   # kinds of task family it accepts
    gradient_based = True      # adapts by gradient steps (False: metric-based, e.g. ProtoNets)
    supports_safeguard = True  # adapts through the functional core's adapt/adaptation_curve
    encoder_only = False       # its model has no head (it outputs embeddings); tests with any ways
    trainable = True           # has a meta-training objective (False: the from-scratch baseline)
    graphable = False          # its meta-loss is the same function at every step (CUDA-graph capture)
    accepts_task_losses = False  # trains on TaskTrees (any TaskLoss), not only supervised TaskBatches
    meta_loss_is_objective = True  # meta_loss's gradient is the meta-gradient (Reptile's is a surrogate)
    rate_metrics: tuple[str, ...] = ()      # keys of last_metrics that are counts, logged per second
    progress_metrics: tuple[str, ...] = ()  # log-row keys the progress bar shows beside the loss

    def __init__(self, model: nn.Module, loss: str = "mse", inner_steps: int = 1,
                 engine: str = "auto") -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(inner_steps, int) or inner_steps < 0:
            raise ValueError(f"inner_steps must be a non-negative integer, got {inner_steps!r}")
        self.model = model
        self.loss_name = loss
        self.loss_fn = get_loss(loss)
        self.inner_steps = inner_steps
        self.engine = choose_engine(engine, model)
        self._forward = make_forward(model)
        # at test time, keep an inner step only if it lowers the support loss (else halve the step):
        # see functional.safeguarded_step; meta-training is unchanged
        self.safeguard = False
        # numbers of the last meta-step beside the loss (an RL step's returns), logged by the trainer
        # as train_<key>, means since the last log row; the keys in ``rate_metrics`` are counts,
        # logged as <key>_per_s of meta-step time instead; ``progress_metrics`` are the row keys
        # the progress bar shows beside the loss
        self.last_metrics: dict[str, float] = {}

    @classmethod
    def from_settings(cls, model: nn.Module, family: TaskFamily, settings: Any) -> Algorithm:
        """Build from a model, the task family it will train on, and the settings dataclass of its
        registry entry. The default passes the settings as keyword arguments, with the family's loss
        (a family whose tasks carry their own task loss has none: its TaskTrees give the loss)."""
        loss = declared(family, "loss", "mse")
        return cls(model, loss=loss, **dataclasses.asdict(settings))

    @property
    def title(self) -> str:
        """How tables name it when it is a baseline beside another run (``retitled`` sets it)."""
        return self.__dict__.get("_title") or f"{self.name} baseline"

    def retitled(self, title: str) -> Algorithm:
        """This algorithm, named ``title`` in tables (e.g. an untrained copy as a baseline)."""
        self.__dict__["_title"] = title
        return self

    def label(self) -> str:
        """How tables name it: the registry name, with the differentiation mode when first order."""
        mode = getattr(self, "mode", None)
        return self.name + (" (first order)" if mode == "first_order" else "")

    # -- what subclasses define -------------------------------------------------------------
    def inner_rule(self) -> InnerRule:
        raise NotImplementedError

    def fast_keys(self) -> list[str] | None:
        """Names of the parameters the inner loop adapts (None: all of them)."""
        return None

    def outer_step(self, params: Sequence[Tensor], lr: float) -> torch.optim.Optimizer | None:
        """The outer optimizer this algorithm needs in place of the trainer's (a TRPO step), or None."""
        return None

    def on_step(self, step: int, total: int) -> None:
        """Called by the trainer before each meta-step (for schedules such as MAML++'s)."""

    def view(self, batch: Any) -> Any:
        """The meta-batch as this algorithm's inner loop sees it (default: as given). An algorithm
        that trains on one kind of TaskTree checks it here and may re-view its task loss (MAML-TRPO's
        inner-objective estimator)."""
        return batch

    def training_tasks(self, tasks: Any) -> Any:
        """What the trainer samples meta-batches from (the transfer baseline samples plain batches)."""
        return tasks

    def meta_loss(self, batch: TaskBatch) -> Tensor:
        """The outer loss on a meta-batch; its gradient is the meta-gradient."""
        raise NotImplementedError

    def meta_backward(self, batch: TaskBatch, scale: float = 1.0) -> Tensor:
        """Accumulate ``scale`` times the meta-gradient into the ``.grad`` of the meta-parameters
        and return the meta-loss (detached). Algorithms whose meta-loss is a mean over tasks may
        back-propagate task by task to hold one task's graph at a time (MAML's loop engine does)."""
        loss = self.meta_loss(batch)
        (loss * scale).backward()
        return loss.detach()

    # -- shared behaviour -------------------------------------------------------------------
    def params(self) -> ParamDict:
        """The model's meta-learned initial parameters."""
        return named_params(self.model)

    def adapt(self, x: Tensor, y: Tensor, steps: int | None = None) -> Learner:
        """Adapt to one task's labelled examples ``(x, y)``; returns a new callable ``Learner``."""
        steps = self.inner_steps if steps is None else steps
        with torch.enable_grad():
            fast = adapt(self._forward, self.loss_fn, detached(self.params()), x, y,
                         detached_rule(self.inner_rule()), steps, "first_order", self.fast_keys(),
                         safeguard=self.safeguard)
        return Learner(self.model, fast)

    def closure(self, batch: Any) -> Callable[[], Tensor]:
        """The meta-loss of ``batch`` at the current parameters, re-evaluated on the same tasks and
        data: what an outer step that searches along its direction calls (``uses_closure``)."""
        return lambda: self.meta_loss(batch)

    def adaptation_curve(self, batch: TaskBatch | TaskTree, steps: int,
                         metric: Callable[[Tensor, Tensor], Tensor] | str | None = None) -> Tensor:
        """Query metric of each task after 0..``steps`` inner updates, shape ``[tasks, steps + 1]``:
        ``metric(outputs, targets)`` for supervised batches, or the name of one of the task loss's
        metrics for a :class:`~metalearn.batch.TaskTree` (default: the loss)."""
        with torch.enable_grad():
            return adaptation_curve(self._forward, self.loss_fn, self.params(), self.view(batch),
                                    detached_rule(self.inner_rule()), steps, engine=self.engine,
                                    metric=metric, fast_keys=self.fast_keys(), safeguard=self.safeguard)
