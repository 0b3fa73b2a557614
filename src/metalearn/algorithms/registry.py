"""Registry of algorithms by name, for the CLI and configs."""
from __future__ import annotations

from ..errors import ConfigError
from .base import Algorithm
from .maml import MAML
from .pretrain import Pretrain

_ALGORITHMS: dict[str, type[Algorithm]] = {"maml": MAML, "pretrain": Pretrain}


def list_algorithms() -> list[str]:
    return sorted(_ALGORITHMS)


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered as ``name``; an unknown name lists the valid ones."""
    try:
        return _ALGORITHMS[name]
    except KeyError:
        raise ConfigError(f"unknown algorithm {name!r}; choose one of: {', '.join(list_algorithms())}") from None


def register_algorithm(name: str, cls: type[Algorithm]) -> None:
    _ALGORITHMS[name] = cls
