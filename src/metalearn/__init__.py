"""metalearn: meta-learning for PyTorch on ``torch.func``.

The five steps of the workflow, each importable from here: task distributions
(:class:`SinusoidTasks`), algorithms (:class:`MAML`, :class:`Pretrain`), meta-training
(:func:`meta_train`, :class:`Trainer`), adaptation (``Algorithm.adapt``) and evaluation
(:func:`evaluate_run`, :func:`mean_ci`).
"""
from . import functional, models
from ._version import __version__ as __version__
from .algorithms import (
    ANIL,
    L2L,
    MAML,
    MAMLTRPO,
    AdaptedPolicy,
    Algorithm,
    Learner,
    MAMLMomentum,
    MAMLpp,
    MetaSGD,
    PolicyPretrain,
    Pretrain,
    ProMP,
    ProtoNet,
    Reptile,
    Scratch,
    Transfer,
    get_algorithm,
    list_algorithms,
)
from .batch import TaskBatch, TaskTree
from .config import Config, list_presets, load_preset
from .data.tables import TableSpec
from .errors import ConfigError, MetalearnError, RunError
from .evaluation.adaptation import EvalResult
from .evaluation.groups import GroupEvaluation
from .evaluation.predict import predict_images, predict_table
from .evaluation.registry import evaluate_run
from .evaluation.stats import mean_ci
from .functional import InnerRule, sgd
from .models import mlp
from .protocols import Metric, Result, TaskFamily, TaskLoss
from .report.figures import make_report
from .runs import Run
from .tasks import (
    AntDir,
    AntGoal,
    EnvTasks,
    FewShotTasks,
    FourRoomsTasks,
    GlucoseTasks,
    HalfCheetahDir,
    HalfCheetahParams,
    HalfCheetahVel,
    HopperParams,
    MiniGridTasks,
    MLPProblems,
    Nav2dTasks,
    QuadraticProblems,
    RemifentanilTasks,
    SinusoidTasks,
    TableTasks,
    get_task_family,
    list_task_families,
)
from .training.loading import load_algorithm
from .training.trainer import Trainer, TrainResult, meta_train

# every registered algorithm and task family class is exported (tests/test_api.py checks it against the registries)
__all__ = [
    "ANIL",
    "L2L",
    "MAML",
    "MAMLTRPO",
    "AdaptedPolicy",
    "Algorithm",
    "AntDir",
    "AntGoal",
    "Config",
    "ConfigError",
    "EnvTasks",
    "EvalResult",
    "FewShotTasks",
    "FourRoomsTasks",
    "GlucoseTasks",
    "GroupEvaluation",
    "HalfCheetahDir",
    "HalfCheetahParams",
    "HalfCheetahVel",
    "HopperParams",
    "InnerRule",
    "Learner",
    "MAMLMomentum",
    "MAMLpp",
    "MLPProblems",
    "MetaSGD",
    "MetalearnError",
    "Metric",
    "MiniGridTasks",
    "Nav2dTasks",
    "PolicyPretrain",
    "Pretrain",
    "ProMP",
    "ProtoNet",
    "QuadraticProblems",
    "RemifentanilTasks",
    "Reptile",
    "Result",
    "Run",
    "RunError",
    "Scratch",
    "SinusoidTasks",
    "TableSpec",
    "TableTasks",
    "TaskBatch",
    "TaskFamily",
    "TaskLoss",
    "TaskTree",
    "TrainResult",
    "Trainer",
    "Transfer",
    "evaluate_run",
    "functional",
    "get_algorithm",
    "get_task_family",
    "list_algorithms",
    "list_presets",
    "list_task_families",
    "load_algorithm",
    "load_preset",
    "make_report",
    "mean_ci",
    "meta_train",
    "mlp",
    "models",
    "predict_images",
    "predict_table",
    "sgd",
]
