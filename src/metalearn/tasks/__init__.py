"""Task distributions: ``TaskBatch`` and the registered task families."""
from .batch import TaskBatch
from .registry import get_task_family, list_task_families
from .sinusoid import SinusoidTask, SinusoidTasks

__all__ = ["SinusoidTask", "SinusoidTasks", "TaskBatch", "get_task_family", "list_task_families"]
