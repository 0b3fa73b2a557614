"""metalearn: meta-learning for PyTorch on ``torch.func``.

The five steps of the workflow, each importable from here: task distributions
(:class:`SinusoidTasks`), algorithms (:class:`MAML`, :class:`Pretrain`), meta-training
(:func:`meta_train`, :class:`Trainer`), adaptation (``Algorithm.adapt``) and evaluation
(:func:`evaluate_run`, :func:`mean_ci`).
"""
from . import functional, models
from .algorithms import (
           MAML,
           MAMLTRPO,
           AdaptedPolicy,
           Algorithm,
           Learner,
           PolicyPretrain,
           Pretrain,
           ProMP,
           get_algorithm,
           list_algorithms,
)
from .batch import TaskBatch, TaskTree
from .config import Config, list_presets, load_preset
from .data.tables import TableSpec
from .errors import ConfigError, MetalearnError, RunError
from .evaluation.adaptation import EvalResult, evaluate_run
from .evaluation.groups import GroupEvaluation
from .evaluation.predict import predict_table
from .evaluation.stats import mean_ci
from .functional import InnerRule, sgd
from .models import mlp
from .protocols import Metric, TaskFamily, TaskLoss
from .report.figures import make_report
from .runs import Run
from .tasks import EnvTasks, Nav2dTasks, SinusoidTasks, get_task_family, list_task_families
from .tasks.tables.grouped import TableTasks
from .training.trainer import Trainer, TrainResult, meta_train

__version__ = "0.1.0"

__all__ = ["AdaptedPolicy", "EnvTasks", "MAMLTRPO", "Nav2dTasks", "PolicyPretrain", "ProMP", "Algorithm", "Config",
           "ConfigError", "EvalResult", "GroupEvaluation", "InnerRule", "Learner", "MAML", "Metric",
           "MetalearnError", "Pretrain", "Run", "RunError", "SinusoidTasks", "TaskBatch", "TaskFamily", "TableSpec",
           "TableTasks", "TaskLoss", "TaskTree", "TrainResult", "Trainer", "evaluate_run", "functional",
           "get_algorithm", "get_task_family", "list_algorithms", "list_presets", "list_task_families",
           "load_preset", "make_report", "mean_ci", "meta_train", "mlp", "models", "predict_table", "sgd"]
