"""Meta-learning algorithms, each a thin composition over the functional core."""
from .base import Algorithm, Learner, accuracy
from .maml import MAML
from .pretrain import Pretrain
from .registry import get_algorithm, list_algorithms, register_algorithm

__all__ = ["Algorithm", "Learner", "MAML", "Pretrain", "accuracy", "get_algorithm", "list_algorithms",
           "register_algorithm"]
