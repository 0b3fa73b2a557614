"""Meta-learning algorithms, each a thin composition over the functional core."""
from ..tasks.few_shot import accuracy
from .anil import ANIL
from .base import Algorithm, InnerLoopSettings, Learner, ModeSettings
from .l2l import L2L
from .maml import MAML
from .maml_momentum import MAMLMomentum
from .maml_trpo import MAMLTRPO, AdaptedPolicy, PolicyPretrain
from .mamlpp import MAMLpp
from .metasgd import MetaSGD
from .pretrain import Pretrain
from .promp import ProMP
from .protonet import ProtoNet
from .registry import AlgorithmSpec, algorithm_options, get_algorithm, get_spec, list_algorithms, register_algorithm
from .reptile import Reptile
from .transfer import Scratch, Transfer

__all__ = ["AdaptedPolicy", "MAMLTRPO", "PolicyPretrain", "ProMP", "ANIL", "Algorithm", "AlgorithmSpec",
           "InnerLoopSettings", "L2L", "Learner", "MAML", "MAMLMomentum", "MAMLpp", "MetaSGD", "ModeSettings",
           "Pretrain", "ProtoNet", "Reptile", "Scratch", "Transfer", "accuracy", "algorithm_options",
           "get_algorithm", "get_spec", "list_algorithms", "register_algorithm"]
