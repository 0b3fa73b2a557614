"""Task distributions: ``TaskBatch`` and the registered task families."""
from ..batch import TaskBatch
from .few_shot.episodes import FewShotTasks, accuracy
from .few_shot.image_families import image_tasks
from .optimizees.problems import MLPProblems, QuadraticProblems
from .registry import FamilyEntry, get_task_family, list_task_families, register_task_family
from .regression.sinusoid import SinusoidTask, SinusoidTasks
from .rl.environments import EnvTasks, PolicyGradientLoss
from .rl.minigrid import FourRoomsTasks, MiniGridTasks
from .rl.mujoco import AntDir, AntGoal, HalfCheetahDir, HalfCheetahParams, HalfCheetahVel, HopperParams
from .rl.nav2d import Nav2dTasks
from .tables.glucose import GlucoseTasks
from .tables.grouped import TableTasks
from .tables.remifentanil import RemifentanilTasks

__all__ = ["AntDir", "AntGoal", "EnvTasks", "FamilyEntry", "FewShotTasks", "FourRoomsTasks", "GlucoseTasks",
           "HalfCheetahDir", "HalfCheetahParams", "HalfCheetahVel", "HopperParams", "MLPProblems", "MiniGridTasks",
           "Nav2dTasks", "PolicyGradientLoss", "QuadraticProblems", "RemifentanilTasks", "SinusoidTask",
           "SinusoidTasks", "TableTasks", "TaskBatch", "accuracy", "get_task_family", "image_tasks",
           "list_task_families", "register_task_family"]
