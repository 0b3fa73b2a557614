"""The trainer's own work at the end of each meta-step, as callbacks (in the manner of
stable-baselines3's): reading the pending meta-losses, the training row of the log, validation
with the best checkpoint, writing the row, and the periodic and kept checkpoints. The trainer runs
``Trainer.step_end`` in order; replacing or adding one changes what a run does at a step's end
without touching the loop. Users' own hooks (``on_step``, ``on_validation``, ``on_end``) are the
:class:`~metalearn.training.trainer.Callback` s in ``Trainer.callbacks``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class StepEnd:
    """What the step-end callbacks share: the step just taken (counting from 1), whether it is the
    run's last (its end, or the time limit), the log row being built, and whether a validation
    callback asked to stop."""

    step: int
    last: bool
    row: dict[str, Any] = field(default_factory=dict)
    stop_asked: bool = False


class StepEndCallback(Protocol):
    """Called after every meta-step with what it did; may ask the trainer to stop."""
    def on_step_end(self, trainer: Any, end: StepEnd) -> None: ...


def _due(end: StepEnd, every: int) -> bool:
    return end.step % every == 0 or end.last


class CheckLosses:
    """Read the meta-losses still on the device (and stop at a non-finite one) before anything is
    logged, validated or saved."""

    def on_step_end(self, trainer: Any, end: StepEnd) -> None:
        if end.last or end.step in trainer.keep or any(
                end.step % k == 0 for k in (trainer.log_every, trainer.val_every, trainer.ckpt_every)):
            trainer._check_losses(end.step)


class TrainingRow:
    """Every ``log_every`` steps: the mean training loss since the last row and the algorithm's own
    step metrics (``train_<key>``, rates for its ``rate_metrics``)."""

    def on_step_end(self, trainer: Any, end: StepEnd) -> None:
        if _due(end, trainer.log_every):
            end.row["train_loss"] = trainer.last_loss = trainer.window[0] / trainer.window[1]
            trainer.window = (0.0, 0)
            end.row.update(trainer._extra_row())


class Validation:
    """Every ``val_every`` steps: the validation scores, the users' ``on_validation`` hooks, and the
    best checkpoint when the score improved."""

    def on_step_end(self, trainer: Any, end: StepEnd) -> None:
        if _due(end, trainer.val_every):
            end.row.update(trainer.validate())
            end.stop_asked = trainer._call("on_validation", end.step, dict(end.row)) or end.stop_asked
            trainer._keep_if_best(end.row[trainer.select])


class RowLog:
    """Write a row that has anything in it to ``metrics.jsonl`` / TensorBoard and the progress bar."""

    def on_step_end(self, trainer: Any, end: StepEnd) -> None:
        if end.row:
            trainer._log_row(end.row)


class Checkpoints:
    """Every ``ckpt_every`` steps ``last.pt``; at the steps in ``keep`` a copy ``step-N.pt``."""

    def on_step_end(self, trainer: Any, end: StepEnd) -> None:
        if _due(end, trainer.ckpt_every):
            trainer._tick()
            trainer.save()
        if end.step in trainer.keep and trainer.dist.is_main:
            trainer._write_checkpoint(trainer.run_dir.checkpoint_dir / f"step-{end.step}.pt", trainer.state())


def default_step_end() -> list[StepEndCallback]:
    """The trainer's own step-end callbacks, in the order they run."""
    return [CheckLosses(), TrainingRow(), Validation(), RowLog(), Checkpoints()]
