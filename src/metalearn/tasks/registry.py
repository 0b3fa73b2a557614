"""Registry of task families by name, for the CLI and configs.

Each entry names the family's class, whose attributes are its declarations (kind, metric,
evaluator, pictures, adapt_input, baseline: see :mod:`metalearn.protocols`), and the builder that
makes the family from a config's ``task`` section:
``from_config(task, split, shots, queries, horizon=None, cross_domain=False)``.
Adding a family is its module plus one line here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._util.registry import Registry
from .._util.settings import Option, keys_of, options_of, settings_from
from .federated.clients import ClientsFromConfig, alphabet_clients_from_config, group_clients_from_config
from .few_shot.episodes import FewShotTasks
from .few_shot.image_families import folder_from_config, mnist_from_config, omniglot_from_config
from .few_shot.settings import FolderSettings, MnistSettings, OmniglotSettings
from .optimizees.problems import MLPProblems, QuadraticProblems
from .regression.sinusoid import SinusoidTasks
from .rl.minigrid import FourRoomsTasks, MiniGridTasks
from .rl.mujoco import AntDir, AntGoal, HalfCheetahDir, HalfCheetahParams, HalfCheetahVel, HopperParams
from .rl.nav2d import Nav2dTasks
from .tables.glucose import GlucoseTasks
from .tables.grouped import TableTasks
from .tables.remifentanil import RemifentanilTasks


@dataclass(frozen=True)
class FamilyEntry:
    """A registered task family: its class (the declarations) and its builder from a config."""

    name: str
    cls: type
    from_config: Callable[..., Any]
    clients: ClientsFromConfig | None = None   # its federated clients, for ``metalearn federate``
    settings: type | None = None               # the dataclass of its own ``task.*`` keys

    def task_keys(self) -> list[str]:
        """Its own ``task.*`` keys (beside the shared ones), in declaration order."""
        return keys_of(self.settings)

    def settings_from(self, task: Any) -> Any:
        """Its settings dataclass, each field read from ``task`` (a config's ``task`` section):
        building it runs the dataclass's checks. None when the family declares no keys."""
        return settings_from(self.settings, task)


_FAMILIES: Registry[FamilyEntry] = Registry("task family")


def register_task_family(name: str, cls: type, from_config: Callable[..., Any] | None = None,
                         clients: ClientsFromConfig | None = None, settings: type | None = None) -> None:
    """Register ``cls`` (a :class:`~metalearn.protocols.TaskFamily`) as ``name``; ``from_config``
    defaults to ``cls.from_config``; ``clients`` makes it federated (the clients it splits into);
    ``settings`` (default: ``cls.settings``) is the dataclass of its own ``task.*`` keys."""
    builder = from_config or cls.from_config  # type: ignore[attr-defined]
    _FAMILIES.add(name, FamilyEntry(name, cls, builder, clients, settings or getattr(cls, "settings", None)))


register_task_family("sinusoid", SinusoidTasks)
register_task_family("omniglot", FewShotTasks, omniglot_from_config, clients=alphabet_clients_from_config,
                     settings=OmniglotSettings)
register_task_family("mnist", FewShotTasks, mnist_from_config, settings=MnistSettings)
register_task_family("image_folder", FewShotTasks, folder_from_config, settings=FolderSettings)
# learned-optimizer problem families (Andrychowicz et al. 2016)
register_task_family("quadratic", QuadraticProblems)
register_task_family("mnist_mlp", MLPProblems)
# grouped tables: one task per patient, hospital or site
register_task_family("table", TableTasks, clients=group_clients_from_config)
register_task_family("glucose", GlucoseTasks, clients=group_clients_from_config)
register_task_family("remifentanil", RemifentanilTasks, clients=group_clients_from_config)
# reinforcement learning: environments whose goal or physics vary
register_task_family("nav2d", Nav2dTasks)
# MuJoCo robots (extra metalearn-torch[rl]; gymnasium is imported when a family is built)
register_task_family("halfcheetah-vel", HalfCheetahVel)
register_task_family("halfcheetah-dir", HalfCheetahDir)
register_task_family("ant-dir", AntDir)
register_task_family("ant-goal", AntGoal)
register_task_family("hopper-params", HopperParams)
register_task_family("halfcheetah-params", HalfCheetahParams)
# game levels (extra metalearn-torch[minigrid]): one task per seeded layout
register_task_family("minigrid-doorkey", MiniGridTasks)
register_task_family("minigrid-fourrooms", FourRoomsTasks)


def unregister_task_family(name: str) -> None:
    """Take the family ``name`` out of the registry (a plugin's, or a test's)."""
    _FAMILIES.remove(name)


def list_task_families() -> list[str]:
    """The registered task-family names, sorted (what ``metalearn list`` prints)."""
    return _FAMILIES.names()


# the task keys every family shares and means the same way; the others are declared per family
SHARED_TASK_KEYS = ("family", "shots", "queries", "data_dir")


def task_options() -> dict[str, Option]:
    """Every family-specific ``task.*`` key of the registered families (the first declaration's
    type and default), by key."""
    return options_of((e.settings for e in _FAMILIES.values() if e.settings is not None), exclude=SHARED_TASK_KEYS)


def families_with_key(key: str) -> list[str]:
    """The registered families that declare ``task.<key>``."""
    return [e.name for e in _FAMILIES.values() if key in e.task_keys()]


def federated_families() -> list[str]:
    """The families whose registry entry says how they split into federated clients."""
    return [e.name for e in _FAMILIES.values() if e.clients is not None]


def get_task_family(name: str) -> FamilyEntry:
    """The registry entry of the task family ``name``; an unknown name lists the valid ones."""
    return _FAMILIES.get(name)
