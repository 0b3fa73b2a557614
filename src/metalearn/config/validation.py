"""Range checks that types alone cannot express: finite floats, positive counts, a device this
machine has, the model's own checks on the task."""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

from ..algorithms.registry import algorithm_options
from ..errors import ConfigError
from ..models.registry import get_model, model_options
from ..tasks.registry import task_options
from .schema import Config, ModelConfig, TaskConfig
from .short_mode import shorten


def _is_float_type(tp: Any) -> bool:
    """Whether the annotation ``tp`` holds floats: ``float``, ``Optional[float]`` or ``List[float]``."""
    if tp is float:
        return True
    return any(_is_float_type(arg) for arg in typing.get_args(tp) if arg is not type(None))


def float_fields(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of every float-typed field of the config dataclass ``obj``, nested
    sections included, read from the dataclasses' annotations."""
    hints = typing.get_type_hints(type(obj))
    found: list[tuple[str, Any]] = []
    for f in dataclasses.fields(obj):
        if f.name == "options":  # the algorithms' or families' own keys, typed by their settings
            options = (task_options() if isinstance(obj, TaskConfig) else model_options()
                       if isinstance(obj, ModelConfig) else algorithm_options())
            found += [(f"{prefix}{key}", getattr(obj, key)) for key, opt in options.items()
                      if _is_float_type(opt.type)]
            continue
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            found += float_fields(value, f"{prefix}{f.name}.")
        elif _is_float_type(hints[f.name]):
            found.append((f"{prefix}{f.name}", value))
    return found


# float keys that must be > 0 (the rest must be finite; train.min_lr also >= 0)
POSITIVE_FLOATS = ("train.lr", "algo.inner_lr", "train.time_limit", "model.preprocess_p", "model.output_scale")


def _check_floats(cfg: Config) -> None:
    """Every float of ``cfg`` is finite (no nan, inf or -inf), and in range where it has one."""
    defaults = dict(float_fields(Config()))
    for key, value in float_fields(cfg):
        if value is None:  # Optional[float]: null means "none" (train.time_limit)
            continue
        example = defaults.get(key)
        if isinstance(example, list):
            example = "[" + ",".join(f"{v:g}" for v in example) + "]"
        fix = f"use e.g. --set {key}={example if example is not None else 60}"
        if key == "train.time_limit":
            fix += " (minutes), or null for no limit"
        if isinstance(value, list):
            if not all(math.isfinite(v) for v in value):
                raise ConfigError(f"{key} must hold finite numbers, got {value}; {fix}")
        elif key in POSITIVE_FLOATS and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{key} must be a finite positive number, got {value}; {fix}")
        elif key == "train.min_lr" and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{key} must be a finite number >= 0, got {value}; {fix}")
        elif not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value}; {fix}")


def check_task_keys(task: TaskConfig) -> None:
    """Every ``task.*`` key that was set is one of the family's own (a misplaced key names the
    family, its keys and the families that have it), and the family's settings pass its checks."""
    task.check_keys("task.")


def check_model_keys(model: ModelConfig) -> None:
    """Every ``model.*`` key that was set is one of the model's own, and its settings pass their checks."""
    model.check_keys("model.")


def validate(cfg: Config) -> Config:
    """Range checks that types alone cannot express."""
    t = cfg.train
    for key in ("steps", "meta_batch", "log_every", "val_every", "val_tasks", "ckpt_every", "threads"):
        if getattr(t, key) <= 0:
            raise ConfigError(f"train.{key} must be positive, got {getattr(t, key)}")
    _check_floats(cfg)
    if cfg.task.shots <= 0:
        raise ConfigError(f"task.shots must be positive, got {cfg.task.shots}; use --set task.shots=10")
    if cfg.task.queries is not None and cfg.task.queries <= 0:
        raise ConfigError(f"task.queries must be positive, got {cfg.task.queries}")
    if cfg.algo.inner_steps < 0:
        raise ConfigError(f"algo.inner_steps must be >= 0, got {cfg.algo.inner_steps}")
    check_task_keys(cfg.task)
    check_model_keys(cfg.model)
    model = get_model(cfg.model.name)
    if model.check is not None:
        model.check(cfg.task)
    if cfg.eval.tasks <= 0 or any(s < 0 for s in cfg.eval.steps):
        raise ConfigError("eval.tasks must be positive and eval.steps non-negative")
    check_device(t.device, "train.device")
    return shorten(cfg)   # METALEARN_SHORT=1: capped for a quick run of a documented command


def check_device(text: str, what: str = "--device") -> str:
    """``text`` if it names a device this machine has (cpu, cuda, cuda:N), else a ConfigError."""
    import torch
    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{what}={text!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{what}={text} but PyTorch sees no CUDA GPU on this machine; use cpu "
                              f"(or install a CUDA build of PyTorch)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{what}={text} but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return text
