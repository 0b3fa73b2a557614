"""Named presets (``metalearn/config/presets/*.yaml``) and YAML config files."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from ..errors import ConfigError, yaml_problem
from .coercion import config_from_dict
from .schema import Config


def list_presets() -> list[str]:
    """The names of the presets shipped in the package (``config/presets/*.yaml``), sorted.

    Returns:
        ``["fed-omniglot-5w1s", ..., "sinusoid", ...]``, each loadable with :func:`load_preset`.
    """
    files = resources.files("metalearn.config") / "presets"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> Config:
    """A named preset from ``metalearn/presets``, or a path to a YAML file."""
    path = Path(name)
    if name.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file {name} does not exist")
        text = path.read_text()
    else:
        res = resources.files("metalearn.config") / "presets" / f"{name}.yaml"
        if not res.is_file():
            raise ConfigError(f"unknown preset or task family {name!r}; choose one of: {', '.join(list_presets())} "
                              f"(or give a path to a YAML config file)")
        text = res.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {name} is not valid YAML: {yaml_problem(exc)}") from None
    return config_from_dict(data)
