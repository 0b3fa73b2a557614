"""Meta-learning algorithms, each a thin composition over the functional core."""
from .anil import ANIL
from .base import Algorithm, Learner, accuracy
from .maml import MAML
from .mamlpp import MAMLpp
from .metasgd import MetaSGD
from .pretrain import Pretrain
from .protonet import ProtoNet
from .registry import get_algorithm, list_algorithms, register_algorithm
from .reptile import Reptile
from .transfer import Scratch, Transfer

__all__ = ["ANIL", "Algorithm", "Learner", "MAML", "MAMLpp", "MetaSGD", "Pretrain", "ProtoNet", "Reptile",
           "Scratch", "Transfer", "accuracy", "get_algorithm", "list_algorithms", "register_algorithm"]
