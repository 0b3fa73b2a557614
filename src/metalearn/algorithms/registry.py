"""Registry of algorithms by name, for the CLI and configs."""
from __future__ import annotations

from ..errors import ConfigError
from .anil import ANIL
from .base import Algorithm
from .l2l import L2L
from .maml import MAML
from .mamlpp import MAMLpp
from .metasgd import MetaSGD
from .pretrain import Pretrain
from .protonet import ProtoNet
from .reptile import Reptile
from .transfer import Transfer

_ALGORITHMS: dict[str, type[Algorithm]] = {
    "maml": MAML, "anil": ANIL, "metasgd": MetaSGD, "mamlpp": MAMLpp, "reptile": Reptile,
    "protonet": ProtoNet, "transfer": Transfer, "pretrain": Pretrain, "l2l": L2L,
}




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
