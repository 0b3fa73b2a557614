"""Reading a config: nested dicts and ``key=value`` overrides checked key by key against the schema's
annotations; unknown keys and wrong types are rejected with the valid choices named."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import yaml

from .._util.settings import Option
from ..algorithms.registry import algorithm_options
from ..errors import ConfigError
from ..models.registry import model_options
from ..tasks.registry import task_options
from .migration import check_version
from .schema import AlgoConfig, Config, ModelConfig, OwnedKeys, TaskConfig


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as ``{"section.key": value}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _type_name(tp: Any) -> str:
    """``float`` -> "a number", ``Optional[float]`` -> "a number or null", ``List[int]`` -> "a list of int"."""
    if tp is type(None):
        return "null"
    if tp is float:
        return "a number"
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        item = typing.get_args(tp)[0]
        return f"a list of {'numbers' if item is float else _type_name(item)}"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, tp, key)
    if origin is list:
        return _coerce_list(value, tp, key)
    scalar = _SCALARS.get(tp)
    if scalar is None:
        raise ConfigError(f"{key}: unsupported type {tp}")
    return scalar(value, key)


def _coerce_union(value: Any, tp: Any, key: str) -> Any:
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, key)
        except ConfigError:
            pass
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _coerce_list(value: Any, tp: Any, key: str) -> list[Any]:
    (item,) = typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of {'numbers' if item is float else _type_name(item)} "
                          f"such as [1, 2], got {value!r}")
    return [_coerce(v, item, key) for v in value]


def _coerce_float(value: Any, key: str) -> float:
    if isinstance(value, str):
        # YAML 1.1 reads 1e-3, 1E-3 and 1_000.5 as strings; take any float notation Python reads
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number such as 0.001 or 1e-3, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: expected a number such as 0.001 or 1e-3, got {value!r}")
    return float(value)


def _coerce_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    return value


def _coerce_bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _coerce_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


_SCALARS: dict[Any, Any] = {float: _coerce_float, int: _coerce_int, bool: _coerce_bool, str: _coerce_str}


def _options(obj: Any) -> dict[str, Option]:
    """The keys a section takes beside its fields: the algorithms' or the task families' own."""
    if isinstance(obj, AlgoConfig):
        return algorithm_options()
    if isinstance(obj, TaskConfig):
        return task_options()
    if isinstance(obj, ModelConfig):
        return model_options()
    return {}


def _unknown_key(obj: Any, full: str, prefix: str, names: list[str], options: dict[str, Option]) -> ConfigError:
    if isinstance(obj, OwnedKeys):
        owner = getattr(obj, obj._owner)
        what = "task family" if isinstance(obj, TaskConfig) else "model"
        return ConfigError(f"unknown config key {full!r}; the {owner} {what}'s keys: "
                           f"{', '.join(prefix + n for n in [*names, *obj.owner_keys(owner)])}")
    return ConfigError(f"unknown config key {full!r}; valid keys here: "
                       f"{', '.join(prefix + n for n in [*names, *sorted(options)])}")


def _apply(obj: Any, data: dict[str, Any], prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj) if f.name != "options"]
    options = _options(obj)
    if isinstance(obj, OwnedKeys) and obj._owner in data:  # the family or model first: it says which keys follow
        data = {obj._owner: data[obj._owner], **data}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key in options and key not in names:
            obj.options[key] = _coerce(value, options[key].type, full)
            if isinstance(obj, AlgoConfig):
                options[key].owner(**{key: obj.options[key]})  # the declaring algorithm checks the value
            continue
        if key not in names:
            raise _unknown_key(obj, full, prefix, names, options)
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                keys = ", ".join(f.name for f in dataclasses.fields(current))
                raise ConfigError(f"{full}: expected a section of keys ({keys}), got {value!r}")
            _apply(current, value, prefix=f"{full}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], full))


def config_from_dict(data: dict[str, Any]) -> Config:
    """A ``Config`` from a nested dict (a YAML file's contents), checked key by key."""
    cfg = Config()
    if not isinstance(data, dict):
        raise ConfigError("a config must be a mapping of sections (task, model, algo, train, eval), "
                          f"got {type(data).__name__}")
    data = dict(data)
    check_version(data.pop("version", None))
    _apply(cfg, data)
    return cfg


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.steps=100"`` -> ``(["train", "steps"], 100)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value (e.g. train.steps=1000), got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``key=value`` overrides in order; unknown keys and wrong types raise ``ConfigError``."""
    for text in overrides:
        path, value = parse_override(text)
        nested: Any = value
        for part in reversed(path):
            nested = {part: nested}
        _apply(cfg, nested)
    return cfg
