"""Learning to learn by gradient descent by gradient descent (Andrychowicz et al. 2016): a
coordinatewise LSTM optimizer, its optimizee task families, its meta-training and a
``torch.optim.Optimizer`` wrapper."""
from .hand_rules import HAND_RULES, nesterov, rmsprop
from .lstm import LSTMOptimizerNet, lstm_rule, preprocess
from .optimizees import MLPProblems, OptimizeeBatch, QuadraticProblems
from .torch_optimizer import LearnedOptimizer
from .training import L2L, optimize

__all__ = ["HAND_RULES", "L2L", "LSTMOptimizerNet", "LearnedOptimizer", "MLPProblems", "OptimizeeBatch",
           "QuadraticProblems", "lstm_rule", "nesterov", "optimize", "preprocess", "rmsprop"]
