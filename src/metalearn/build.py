"""Build the task family, model and algorithm that a ``Config`` describes (the CLI's edge)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .algorithms import MAML, Algorithm, get_algorithm
from .config import Config
from .errors import ConfigError
from .functional import ENGINES, MODES
from .models import mlp
from .tasks import get_task_family

MODELS = ("mlp",)


def build_tasks(cfg: Config, shots: int | None = None) -> Any:
    """The task family of ``cfg.task`` (``shots`` overrides K for support and query)."""
    t = cfg.task
    factory = get_task_family(t.family)
    k = t.shots if shots is None else shots
    q = (t.queries if t.queries is not None else t.shots) if shots is None else shots
    if t.family == "sinusoid":
        for name in ("amplitude", "phase", "x_range"):
            if len(getattr(t, name)) != 2:
                raise ConfigError(f"task.{name} must be [low, high], got {getattr(t, name)}")
        return factory(shots=k, queries=q, amplitude=tuple(t.amplitude), phase=tuple(t.phase),
                       x_range=tuple(t.x_range))
    return factory(shots=k, queries=q)


def build_model(cfg: Config, tasks: Any) -> nn.Module:
    m = cfg.model
    if m.name != "mlp":
        raise ConfigError(f"unknown model {m.name!r}; choose one of: {', '.join(MODELS)}")
    if any(h <= 0 for h in m.hidden):
        raise ConfigError(f"model.hidden sizes must be positive, got {m.hidden}")
    try:
        return mlp(int(tasks.input_shape[0]), m.hidden, tasks.output_dim, m.activation)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None


def build_algorithm(cfg: Config, tasks: Any, name: str | None = None) -> Algorithm:
    """Model and algorithm, with the model initialised from ``cfg.train.seed``."""
    a = cfg.algo
    cls = get_algorithm(name or a.name)
    if a.mode not in MODES:
        raise ConfigError(f"unknown algo.mode {a.mode!r}; choose one of: {', '.join(MODES)}")
    if a.engine not in ENGINES:
        raise ConfigError(f"unknown algo.engine {a.engine!r}; choose one of: {', '.join(ENGINES)}")
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, tasks)
    kwargs = dict(inner_lr=a.inner_lr, inner_steps=a.inner_steps, loss=tasks.loss, engine=a.engine)
    if issubclass(cls, MAML):
        kwargs["mode"] = a.mode
    return cls(model, **kwargs)
