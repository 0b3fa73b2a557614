"""Registry of task families by name, for the CLI and configs."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

from ..errors import ConfigError
from .image_families import image_tasks
from .optimizees import MLPProblems, QuadraticProblems
from .sinusoid import SinusoidTasks

_FAMILIES: dict[str, Callable[..., Any]] = {
    "sinusoid": SinusoidTasks,
    "omniglot": partial(image_tasks, "omniglot"),
    "mnist": partial(image_tasks, "mnist"),
    "image_folder": partial(image_tasks, "image_folder"),
}


# learned-optimizer problem families (Andrychowicz et al. 2016)
_FAMILIES.update(quadratic=QuadraticProblems, mnist_mlp=MLPProblems)


def list_task_families() -> list[str]:
    return sorted(_FAMILIES)


def get_task_family(name: str) -> Callable[..., Any]:
    """The constructor of the task family ``name``; an unknown name lists the valid ones."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown task family {name!r}; choose one of: {', '.join(list_task_families())}") from None


def register_task_family(name: str, factory: Callable[..., Any]) -> None:
    _FAMILIES[name] = factory
