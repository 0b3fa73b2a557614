"""Task distributions: ``TaskBatch`` and the registered task families."""
from ..batch import TaskBatch
from .environments import EnvTasks, PolicyGradientLoss
from .few_shot import FewShotTasks, accuracy
from .image_families import image_tasks
from .nav2d import Nav2dTasks
from .registry import FamilyEntry, get_task_family, list_task_families, register_task_family
from .sinusoid import SinusoidTask, SinusoidTasks

__all__ = ["EnvTasks", "Nav2dTasks", "PolicyGradientLoss", "FamilyEntry", "FewShotTasks", "accuracy", "SinusoidTask",
           "SinusoidTasks", "TaskBatch", "get_task_family", "image_tasks", "list_task_families",
           "register_task_family"]
