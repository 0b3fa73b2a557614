"""Task distributions: ``TaskBatch`` and the registered task families."""
from ..batch import TaskBatch
from .few_shot.episodes import FewShotTasks, accuracy
from .few_shot.image_families import image_tasks
from .registry import FamilyEntry, get_task_family, list_task_families, register_task_family
from .regression.sinusoid import SinusoidTask, SinusoidTasks
from .rl.environments import EnvTasks, PolicyGradientLoss
from .rl.nav2d import Nav2dTasks

__all__ = ["EnvTasks", "Nav2dTasks", "PolicyGradientLoss", "FamilyEntry", "FewShotTasks", "accuracy", "SinusoidTask",
           "SinusoidTasks", "TaskBatch", "get_task_family", "image_tasks", "list_task_families",
           "register_task_family"]
