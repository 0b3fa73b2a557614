"""Learning to learn by gradient descent by gradient descent (Andrychowicz et al. 2016), in one
place for users: the coordinatewise LSTM optimizer (``models.lstm_optimizer``), its optimizee task
families (``tasks.optimizees.problems``), its meta-training (``algorithms.l2l``), its evaluation against
hand-designed optimizers (``evaluation.optimizers``) and the ``torch.optim.Optimizer`` wrapper
(``LearnedOptimizer``). Each piece lives in the layer it belongs to; this package only gathers them.
"""
from ..algorithms.l2l import L2L
from ..functional.rules import nesterov, rmsprop
from ..models.lstm_optimizer import LSTMOptimizerNet, lstm_rule, preprocess
from ..tasks.optimizees.optimize import optimize
from ..tasks.optimizees.problems import MLPProblems, OptimizeeBatch, QuadraticProblems
from .torch_optimizer import LearnedOptimizer

__all__ = ["L2L", "LSTMOptimizerNet", "LearnedOptimizer", "MLPProblems", "OptimizeeBatch",
           "QuadraticProblems", "lstm_rule", "nesterov", "optimize", "preprocess", "rmsprop"]
