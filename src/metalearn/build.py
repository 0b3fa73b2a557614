"""Build the task family, model and algorithm that a ``Config`` describes (the CLI's edge)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .algorithms import MAML, Algorithm, get_algorithm
from .config import Config
from .errors import ConfigError
from .functional import ENGINES, MODES
from .models import conv4, mlp
from .tasks import get_task_family
from .train import Trainer

MODELS = ("conv4", "mlp")


def build_tasks(cfg: Config, split: str = "train", shots: int | None = None,
                queries: int | None = None, family: str | None = None) -> Any:
    """The task family of ``cfg.task`` for ``split`` (train, validation or test); ``shots``,
    ``queries`` and ``family`` override the config (e.g. to test on another dataset)."""
    t = cfg.task
    family = family or t.family
    factory = get_task_family(family)
    k = t.shots if shots is None else shots
    q = queries if queries is not None else (t.queries if t.queries is not None and shots is None else k)
    if family == "sinusoid":
        for name in ("amplitude", "phase", "x_range"):
            if len(getattr(t, name)) != 2:
                raise ConfigError(f"task.{name} must be [low, high], got {getattr(t, name)}")
        return factory(shots=k, queries=q, amplitude=tuple(t.amplitude), phase=tuple(t.phase),
                       x_range=tuple(t.x_range))
    return factory(split, t.ways, k, q, image_size=t.image_size, data_dir=t.data_dir,
                   protocol=t.protocol, rotations=t.rotations, classes=t.classes, channels=t.channels)


def build_model(cfg: Config, tasks: Any) -> nn.Module:
    m = cfg.model
    if m.name not in MODELS:
        raise ConfigError(f"unknown model {m.name!r}; choose one of: {', '.join(MODELS)}")
    if m.name == "conv4":
        c, h, w = tasks.input_shape
        if h != w:
            raise ConfigError(f"conv4 expects square images, got {h}x{w}")
        if m.width <= 0:
            raise ConfigError(f"model.width must be positive, got {m.width}")
        return conv4(c, tasks.output_dim, m.width, h)
    if any(h <= 0 for h in m.hidden):
        raise ConfigError(f"model.hidden sizes must be positive, got {m.hidden}")
    if len(tasks.input_shape) != 1:
        raise ConfigError(f"the mlp model takes flat inputs but {cfg.task.family} gives "
                          f"{tuple(tasks.input_shape)}; use --set model.name=conv4")
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


def build_trainer(cfg: Config, out: Any, progress: bool = True, algo_name: str | None = None) -> Trainer:
    """The model, algorithm, task families (train and validation) and trainer of ``cfg``."""
    tasks = build_tasks(cfg, "train")
    val = None if cfg.task.family == "sinusoid" else build_tasks(cfg, "validation")
    algo = build_algorithm(cfg, tasks, algo_name)
    t = cfg.train
    return Trainer(algo, tasks, out, steps=t.steps, meta_batch=t.meta_batch, lr=t.lr, seed=t.seed,
                   log_every=t.log_every, val_every=t.val_every, val_tasks=t.val_tasks,
                   ckpt_every=t.ckpt_every, device=t.device, progress=progress,
                   config=cfg.to_dict(), val_family=val, time_limit=t.time_limit, keep=t.keep)
