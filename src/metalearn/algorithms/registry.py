"""Registry of algorithms by name, for the CLI and configs.

Each entry names the algorithm's class and its *settings*: a dataclass of the constructor
arguments a config's ``algo`` section gives it (with defaults, checked in ``__post_init__``). The
class builds itself from a model, a task family and its settings (``Algorithm.from_settings``)
and declares what it needs (``task_kinds``, ``encoder_only``, ``trainable``, ...), so building is
generic: adding an algorithm is its module plus one ``register_algorithm`` line here. Settings keys
that are not common to every algorithm (``inner_lr``, ``inner_steps``, ``mode``, ``engine``,
``safeguard``) become valid ``algo.*`` config keys by being declared here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._util.registry import Registry
from .._util.settings import Option, options_of, settings_from
from .base import Algorithm, InnerLoopSettings
from .baselines.pretrain import Pretrain
from .baselines.transfer import Scratch, ScratchSettings, Transfer, TransferSettings
from .gradient.anil import ANIL, ANILSettings
from .gradient.maml import MAML, MAMLSettings
from .gradient.maml_momentum import MAMLMomentum, MAMLMomentumSettings
from .gradient.mamlpp import MAMLpp, MAMLppSettings
from .gradient.metasgd import MetaSGD
from .gradient.reptile import Reptile, ReptileSettings
from .l2l import L2L, L2LSettings
from .metric.protonet import ProtoNet, ProtoNetSettings
from .rl.maml_trpo import MAMLTRPO, MAMLTRPOSettings, PolicyPretrain
from .rl.promp import ProMP, ProMPSettings


@dataclass(frozen=True)
class AlgorithmSpec:
    """A registered algorithm: its class and the dataclass of its settings."""

    name: str
    cls: type[Algorithm]
    settings: type

    def settings_from(self, source: Any) -> Any:
        """The settings, each field read from ``source`` (a config's ``algo`` section) by name."""
        return settings_from(self.settings, source)


_ALGORITHMS: Registry[AlgorithmSpec] = Registry("algorithm")


def register_algorithm(name: str, cls: type[Algorithm], settings: type = InnerLoopSettings) -> None:
    """Register an algorithm under ``name`` for the CLI, the configs and :func:`get_algorithm`.

    Args:
        name: the ``algo.name`` that selects it.
        cls: the :class:`~metalearn.algorithms.base.Algorithm` subclass.
        settings: the dataclass of its ``algo.*`` keys (validated when a config is read).
    """
    _ALGORITHMS.add(name, AlgorithmSpec(name, cls, settings))


register_algorithm("maml", MAML, MAMLSettings)
register_algorithm("anil", ANIL, ANILSettings)
register_algorithm("metasgd", MetaSGD, MAMLSettings)
register_algorithm("mamlpp", MAMLpp, MAMLppSettings)
register_algorithm("reptile", Reptile, ReptileSettings)
register_algorithm("protonet", ProtoNet, ProtoNetSettings)
register_algorithm("transfer", Transfer, TransferSettings)
register_algorithm("pretrain", Pretrain, InnerLoopSettings)
register_algorithm("scratch", Scratch, ScratchSettings)
register_algorithm("l2l", L2L, L2LSettings)
register_algorithm("mamlmom", MAMLMomentum, MAMLMomentumSettings)
# meta-reinforcement learning (environment task families)
register_algorithm("maml_trpo", MAMLTRPO, MAMLTRPOSettings)
register_algorithm("promp", ProMP, ProMPSettings)
register_algorithm("policy_pretrain", PolicyPretrain, MAMLTRPOSettings)

# the keys every algorithm's config section has (config.AlgoConfig's fields)
COMMON_KEYS = ("name", "inner_lr", "inner_steps", "mode", "engine", "safeguard")


def list_algorithms() -> list[str]:
    """The registered algorithm names, sorted (what ``metalearn list`` prints).

    Returns:
        ``["anil", "l2l", "maml", ...]``.
    """
    return _ALGORITHMS.names()


def get_spec(name: str) -> AlgorithmSpec:
    """The registry entry of ``name``; an unknown name lists the valid ones."""
    return _ALGORITHMS.get(name)


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered as ``name``; an unknown name lists the valid ones."""
    return get_spec(name).cls


def algorithm_options() -> dict[str, Option]:
    """Every algorithm-specific setting of the registered algorithms, by key."""
    return options_of((spec.settings for spec in _ALGORITHMS.values()), exclude=COMMON_KEYS)
