"""Weights & Biases as an optional logger beside JSON lines and TensorBoard (``--set log.wandb=true``).

A trainer callback: the run's resolved config goes to W&B once, the training loss every
``train.log_every`` steps and every validation row at its step; ``metalearn report`` adds the
report's pictures to the same W&B run (its id is kept in ``RUN/wandb_id``, so a resumed run
continues the same W&B run). ``WANDB_MODE=offline`` works without an account or network (the
run is written under ``RUN/wandb`` for a later ``wandb sync``). Nothing imports wandb unless asked.
"""
from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

from .._util.files import atomic_write_text
from ..errors import ConfigError


def _wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise ConfigError("log.wandb=true needs Weights & Biases: pip install 'metalearn-torch[wandb]' "
                          "(WANDB_MODE=offline to log without an account)") from None
    return wandb


def start_wandb_run(run_dir: Path | str, config: dict[str, Any] | None, project: str) -> Any:
    """The W&B run of the metalearn run folder ``run_dir`` (created, or resumed by its stored id)."""
    wandb = _wandb()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    id_file = run_dir / "wandb_id"
    run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
    run = wandb.init(project=project, dir=str(run_dir), name=run_dir.name, id=run_id, resume="allow",
                     config=config, reinit="finish_previous")
    if not id_file.is_file():
        atomic_write_text(id_file, run_id + "\n")
    return run


class WandbLogger:
    """Trainer callback that logs to a W&B run (see the module docstring)."""

    def __init__(self, run_dir: Path | str, config: dict[str, Any], project: str = "metalearn",
                 log_every: int = 100) -> None:
        _wandb()   # a missing extra fails before any training
        self.run_dir, self.config, self.project, self.log_every = Path(run_dir), config, project, log_every
        self.run: Any = None

    def _ensure(self) -> Any:
        if self.run is None:
            self.run = start_wandb_run(self.run_dir, self.config, self.project)
        return self.run

    def on_step(self, trainer: Any, step: int, loss: Any) -> bool:
        if step % self.log_every == 0:
            value = float(loss)
            if math.isfinite(value):
                self._ensure().log({"train_loss": value}, step=step)
        return False

    def on_validation(self, trainer: Any, step: int, row: dict[str, float]) -> bool:
        self._ensure().log({k: v for k, v in row.items() if k != "step"}, step=step)
        return False

    def on_end(self, trainer: Any, result: Any) -> None:
        if self.run is not None:
            self.run.summary["best_val"] = result.best_val
            self.run.summary["best_step"] = result.best_step
            self.run.finish()
            self.run = None


def log_pictures(run_dir: Path | str, project: str, pictures: list[Path]) -> None:
    """Add the report's PNGs to the run's W&B run."""
    wandb = _wandb()
    run = start_wandb_run(run_dir, None, project)
    run.log({p.stem: wandb.Image(str(p)) for p in pictures if p.suffix == ".png"})
    run.finish()
