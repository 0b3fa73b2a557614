"""Run folders: the folder and its files (``folder``), one writer at a time (``lock``), checkpoints
(``checkpoint``), the metrics log and TensorBoard events (``metrics_log``)."""
from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint, load_weights, save_checkpoint
from .folder import Run
from .lock import RunLock
from .metrics_log import MetricsLog, TensorBoardWriter

__all__ = ["CHECKPOINT_FORMAT", "MetricsLog", "Run", "RunLock", "TensorBoardWriter", "load_checkpoint", "load_weights",
           "save_checkpoint"]
