"""Meta-learning algorithms, each a thin composition over the functional core."""
from ..tasks.few_shot.episodes import accuracy
from .base import Algorithm, InnerLoopSettings, Learner, ModeSettings
from .baselines.pretrain import Pretrain
from .baselines.transfer import Scratch, Transfer
from .gradient.anil import ANIL
from .gradient.maml import MAML
from .gradient.maml_momentum import MAMLMomentum
from .gradient.mamlpp import MAMLpp
from .gradient.metasgd import MetaSGD
from .gradient.reptile import Reptile
from .l2l import L2L
from .metric.protonet import ProtoNet
from .registry import AlgorithmSpec, algorithm_options, get_algorithm, get_spec, list_algorithms, register_algorithm
from .rl.maml_trpo import MAMLTRPO, AdaptedPolicy, PolicyPretrain
from .rl.promp import ProMP

__all__ = [
           "ANIL",
           "L2L",
           "MAML",
           "MAMLTRPO",
           "AdaptedPolicy",
           "Algorithm",
           "AlgorithmSpec",
           "InnerLoopSettings",
           "Learner",
           "MAMLMomentum",
           "MAMLpp",
           "MetaSGD",
           "ModeSettings",
           "PolicyPretrain",
           "Pretrain",
           "ProMP",
           "ProtoNet",
           "Reptile",
           "Scratch",
           "Transfer",
           "accuracy",
           "algorithm_options",
           "get_algorithm",
           "get_spec",
           "list_algorithms",
           "register_algorithm",
]
