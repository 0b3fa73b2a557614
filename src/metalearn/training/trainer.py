"""Meta-training: meta-batches, the outer optimizer, validation on fixed tasks, best-checkpoint
selection, resumable checkpoints, JSON-lines and TensorBoard logs, and a progress bar.

A run stopped by Ctrl-C (or SIGTERM) finishes its current step, writes a checkpoint and returns;
a killed run resumes from its last periodic checkpoint. Either way, resuming with the same seed
ends with exactly the same weights as a run that was never stopped: the checkpoint holds the
weights, the optimizer state and the state of the task sampler's random generator.
"""
from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._util.progress import counted
from .._util.seeding import generator
from ..algorithms import Algorithm
from ..config import flatten
from ..config.short_mode import STEPS, VAL_TASKS, capped
from ..errors import MetalearnError, RunError, one_line
from ..protocols import Metric, TaskFamily, declared
from ..runs import Run, RunLock, load_checkpoint, load_weights, save_checkpoint
from ..runs.metrics_log import MetricsLog
from .callbacks import StepEnd, StepEndCallback, default_step_end
from .distributed import DistContext

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "linear")
# what a resumed run may change (its length, speed and logs, never its numbers: both vector modes give
# the same episodes); any other difference from the checkpoint's config is refused
RESUMABLE_KEYS = ("train.steps", "train.time_limit", "train.threads", "task.vector", "task.workers", "log.wandb",
                  "log.wandb_project", "log.mlflow", "log.mlflow_uri")


def config_differences(saved: dict[str, Any], current: dict[str, Any],
                       ignore: tuple[str, ...] = RESUMABLE_KEYS) -> list[str]:
    """``key: saved vs current`` for every key set in both configs that differs (keys one of them
    lacks, e.g. from an older version of metalearn, are not compared)."""
    a, b = flatten(saved), flatten(current)
    return [f"{k}: {a[k]!r} vs {b[k]!r}" for k in a if k in b and k not in ignore and a[k] != b[k]]


LOSS = Metric("loss", higher_is_better=False)


class Callback(Protocol):
    """Called by the trainer; any method may be left out. Returning True asks the trainer to stop:
    it writes a checkpoint and returns (``TrainResult.stopped``), so the run can be resumed. What
    automated tuning needs to prune a trial, federated rounds to aggregate, RL to log returns."""

    def on_step(self, trainer: Trainer, step: int, loss: Tensor) -> bool | None: ...

    def on_validation(self, trainer: Trainer, step: int, row: dict[str, float]) -> bool | None: ...

    def on_end(self, trainer: Trainer, result: TrainResult) -> None: ...


@dataclass
class TrainResult:
    """What a call to :meth:`Trainer.run` did."""

    step: int                 # the last completed meta-step
    best_val: float           # best validation loss (accuracy for classification) so far
    best_step: int
    interrupted: bool         # stopped by a signal before reaching ``steps``
    seconds: float            # meta-training wall time, summed over resumes
    time_limited: bool = False  # stopped by ``time_limit`` before reaching ``steps``
    stopped: bool = False       # stopped by a callback


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between steps; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.set = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    """Meta-trains ``algorithm`` on ``tasks`` (a :class:`~metalearn.protocols.TaskFamily`: at least
    ``sample(n, generator)``), writing everything to the run folder ``out``.

    Args:
        steps: total meta-steps (outer updates) of the run.
        meta_batch: tasks per meta-step.
        lr: the outer learning rate (of ``optimizer``, or of ``outer_step``'s parameter groups),
            following ``lr_schedule``.
        seed: seeds the task stream; the validation tasks come from a separate fixed stream.
        log_every: meta-steps between logged training losses.
        val_every: meta-steps between validations.
        ckpt_every: meta-steps between periodic checkpoints.
        val_tasks: size of the fixed validation set.
        config: the resolved config dict, stored in checkpoints for provenance.
        val_family: where validation tasks come from (default: ``tasks``, on its own seed stream);
            for image tasks, the validation classes.
        time_limit: minutes of wall time (summed over resumes) that the run may take, set-up, final
            validation and checkpoint included: it stops stepping early enough to validate and
            save within the limit (their cost measured on the last validation and checkpoint, or
            estimated from the meta-steps before the first); ``--resume`` with a larger limit or
            none continues it.
        started: when the command started (``time.perf_counter()``; default: now), so that the
            time limit counts the set-up before training too.
        keep: steps at which a copy of the checkpoint is kept as ``checkpoints/step-N.pt``.
        outer_step: the outer optimizer, in place of ``optimizer`` (a ``torch.optim.Optimizer``);
            one that declares ``uses_closure = True`` gets ``step(closure)``, the closure
            re-evaluating the meta-loss on the same tasks (a TRPO step's line search).
        callbacks: objects with ``on_step`` and/or ``on_validation`` (see :class:`Callback`).

    Validation scores the fixed validation tasks with the task family's declared metric (the loss
    when it declares none) after the training number of inner steps, and the best checkpoint is
    chosen on it. The trainer sets nothing global that another trainer in the process would see.
    """

    def __init__(self, algorithm: Algorithm, tasks: TaskFamily, out: Path | str, *, steps: int,
                 meta_batch: int = 25, lr: float = 1e-3, seed: int = 0, log_every: int = 100,
                 val_every: int = 1000, val_tasks: int = 300, ckpt_every: int = 1000,
                 device: str | torch.device = "cpu", progress: bool = True,
                 config: dict[str, Any] | None = None, val_family: TaskFamily | None = None,
                 time_limit: float | None = None, keep: tuple[int, ...] | list[int] = (),
                 optimizer: str = "adam", lr_schedule: str = "constant", min_lr: float = 0.0,
                 dist: DistContext | None = None, cuda_graph: bool = False,
                 outer_step: torch.optim.Optimizer | None = None, callbacks: Sequence[Callback] = (),
                 started: float | None = None) -> None:
        # when the command started (time.perf_counter): the time limit bounds its whole wall time
        self.started = time.perf_counter() if started is None else started
        self._val_cost: float | None = None   # seconds of the last validation
        self._write_cost = 0.0                # seconds of the last checkpoint write
        for name, value in (("steps", steps), ("meta_batch", meta_batch), ("log_every", log_every),
                            ("val_every", val_every), ("val_tasks", val_tasks), ("ckpt_every", ckpt_every)):
            if not isinstance(value, int) or value <= 0:
                raise MetalearnError(f"{name} must be a positive integer, got {value!r}")
        steps, val_tasks = capped(steps, STEPS), capped(val_tasks, VAL_TASKS)   # METALEARN_SHORT=1
        self.dist = dist or DistContext(device=torch.device(device))
        if self.dist.active:
            device = self.dist.device
        self.algorithm = algorithm.to(device)
        self.tasks = algorithm.training_tasks(tasks)
        self.run_dir = Run(out)
        self.steps, self.meta_batch, self.lr, self.seed = steps, meta_batch, lr, seed
        self.log_every, self.val_every, self.ckpt_every = log_every, val_every, ckpt_every
        self.device = torch.device(device)
        self.progress = progress and self.dist.is_main
        self.config = config
        self.time_limit = None if time_limit is None else 60.0 * time_limit
        self.keep = set(keep)
        if optimizer not in OPTIMIZERS:
            raise MetalearnError(f"unknown optimizer {optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if lr_schedule not in SCHEDULES:
            raise MetalearnError(f"unknown lr schedule {lr_schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        params = [p for p in self.algorithm.parameters() if p.requires_grad]
        fused = True if self.device.type == "cuda" else None  # one kernel for the whole update (None: default)
        own_step = self.algorithm.outer_step(params, lr) if outer_step is None else None
        self.optimizer = outer_step or own_step or (torch.optim.Adam(params, lr=lr, fused=fused) if optimizer == "adam"
                                                    else torch.optim.SGD(params, lr=lr, fused=fused))
        if self.dist.active and getattr(self.optimizer, "uses_closure", False):
            raise MetalearnError(f"{algorithm.name}'s outer step re-evaluates the meta-loss on the episodes of every "
                                 f"task of the meta-batch, so it trains in one process; leave out --procs/torchrun")
        self.callbacks = list(callbacks)
        # the trainer's own work at each step's end, in order (training/callbacks.py)
        self.step_end: list[StepEndCallback] = default_step_end()
        self._log: MetricsLog | None = None   # the run's metrics log and progress bar, while it runs
        self._bar: Any = None
        self.lr_schedule, self.min_lr = lr_schedule, min_lr
        self.graphed = None
        if cuda_graph:
            if self.dist.active:
                raise MetalearnError("train.cuda_graph runs in one process; leave it off under torchrun")
            from .cuda_graph import GraphedMetaStep
            self.graphed = GraphedMetaStep(self.algorithm)
        self.task_rng = generator("train", seed)
        self.val_batch = (val_family or tasks).sample(val_tasks, generator("validation", seed)).to(self.device)
        self.metric: Metric = declared(val_family or tasks, "metric") or LOSS
        self.select = "val_loss" if self.metric.is_loss else f"val_{self.metric.short}"
        # what a second writer of the run folder is told (the train command's; evaluate's baseline has its own)
        self.lock_advice = "wait for it to finish (or stop it), or choose another --out"
        self.surrogate_loss = bool(declared(val_family or tasks, "surrogate_loss", False)) and not self.metric.is_loss
        self.higher_is_better = self.metric.higher_is_better and not self.metric.is_loss
        self.step = 0
        self.best_val = -math.inf if self.higher_is_better else math.inf
        self.best_step = 0
        self.seconds = 0.0
        self.window = (0.0, 0)     # (sum, count) of the training losses since the last log row
        self.extra: dict[str, list[float]] = {}  # the algorithm's last_metrics since the last log row
        self.last_loss = math.nan  # the last logged training loss (for the progress bar)
        # On an accelerator the meta-losses stay on the device and are read (and checked for NaN)
        # at the next log/validation/checkpoint step, so that the host queues work ahead instead of
        # waiting for every step; no checkpoint is written before the losses it follows are checked.
        self.sync_every_step = self.device.type == "cpu"
        self._pending: list[Tensor] = []

    def lr_at(self, step: int) -> float:
        """The outer learning rate for meta-step ``step`` (0-based): constant, cosine-annealed
        (MAML++) or linearly annealed (Reptile) from ``lr`` to ``min_lr``."""
        frac = step / max(self.steps, 1)
        if self.lr_schedule == "cosine":
            return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * frac))
        if self.lr_schedule == "linear":
            return self.lr + (self.min_lr - self.lr) * frac
        return self.lr

    def _set_lr(self) -> None:
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    # -- checkpoints ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"step": self.step, "model": self.algorithm.state_dict(),
                "optimizer": self.optimizer.state_dict(), "task_rng": self.task_rng.get_state(),
                "torch_rng": torch.get_rng_state(), "best_val": self.best_val,
                "best_step": self.best_step, "seconds": self.seconds, "algorithm": self.algorithm.name,
                "window": list(self.window),
                "config": self.config, "selected": self.selected()}

    def selected(self) -> dict[str, Any]:
        """What validation selects on, and how ``evaluate`` prints it: ``{"key": "val_acc", "name":
        "accuracy (%)", "scale": 100.0}`` (a value times ``scale`` is in the units of ``name``; a table
        regression's scale is its target's standard deviation, so the RMSE is in the target's units)."""
        name = "loss" if self.metric.is_loss else self.metric.name
        return {"key": self.select, "name": name, "scale": 1.0 if self.metric.is_loss else float(self.metric.scale)}

    def save(self) -> None:
        if self.dist.is_main:
            self._write_checkpoint(self.run_dir.last_checkpoint, self.state())

    def _write_checkpoint(self, path: Path, state: dict[str, Any]) -> None:
        """An atomic checkpoint write; an OS error (a full disk, a read-only folder) stops the run
        with a message saying that the previous checkpoint is intact."""
        try:
            began = time.perf_counter()
            save_checkpoint(path, state)
            self._write_cost = time.perf_counter() - began
        except OSError as exc:
            kept = (f"{self.run_dir.last_checkpoint} still holds the last good checkpoint (step "
                    f"{self._saved_step()})" if self.run_dir.last_checkpoint.is_file()
                    else "no checkpoint was written yet")
            raise RunError(f"cannot write {path}: {exc.strerror or one_line(exc)}; {kept}. Free space or "
                           f"make the folder writable, then 'metalearn train --resume {self.run_dir.path}'"
                           ) from None

    def load(self, path: Path | str | None = None) -> None:
        """Restore everything from a checkpoint (default: the run's ``last.pt``); a checkpoint of
        another algorithm or config is refused, naming both."""
        path = Path(path) if path is not None else self.run_dir.last_checkpoint
        state = load_checkpoint(path)
        saved_algo = state.get("algorithm")
        if saved_algo is not None and saved_algo != self.algorithm.name:
            raise RunError(f"checkpoint {path} was written by algorithm {saved_algo!r} but this run trains "
                           f"{self.algorithm.name!r}; resume a run only from its own checkpoint")
        if isinstance(state.get("config"), dict) and self.config is not None:
            diff = config_differences(state["config"], self.config)
            if diff:
                raise RunError(f"checkpoint {path} was written with another config than this run's "
                               f"(checkpoint vs run: {'; '.join(diff[:4])}"
                               f"{'; ...' if len(diff) > 4 else ''}); resume a run only from its own "
                               f"checkpoint, or start a new run")
        load_weights(self.algorithm, state["model"], path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.task_rng.set_state(state["task_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.best_val, self.best_step = float(state["best_val"]), int(state["best_step"])
        self.seconds = float(state.get("seconds", 0.0))
        self.window = (float(state["window"][0]), int(state["window"][1]))

    # -- validation -------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Mean query loss (and the family's metric, when it is not the loss; only the metric when
        the loss is a surrogate) on the fixed validation tasks after the training number of inner
        steps."""
        began = time.perf_counter()
        try:
            return self._validate()
        finally:
            self._val_cost = time.perf_counter() - began

    def _validate(self) -> dict[str, float]:
        steps = self.algorithm.inner_steps
        batch = self.val_batch[self.dist.shard(self.val_batch.num_tasks)] if self.dist.active else self.val_batch
        n = self.val_batch.num_tasks

        metrics: list[Any] = [] if self.surrogate_loss else [None]
        if not self.metric.is_loss:
            metrics.append(self.metric.fn if self.metric.fn is not None else self.metric.key)
        # a bar under the training bar while the tasks are scored, gone when they are
        bar = tqdm(total=batch.num_tasks * len(metrics), disable=not self.progress, unit="task", leave=False,
                   mininterval=0.5, dynamic_ncols=True, desc="validation")
        try:
            finals = []
            for metric in metrics:
                curve = counted(functools.partial(self.algorithm.adaptation_curve, batch, steps, metric=metric),
                                batch.num_tasks, bar)
                finals.append(float(self.dist.sum(curve[:, -1].sum()) / n))
        finally:
            bar.close()
        names = ([] if self.surrogate_loss else ["val_loss"]) + ([] if self.metric.is_loss else [self.select])
        return dict(zip(names, finals, strict=True))

    def _better(self, value: float) -> bool:
        return value > self.best_val if self.higher_is_better else value < self.best_val

    def _call(self, hook: str, *args: Any) -> bool:
        """Call ``hook`` on every callback that has it; True if one of them asks to stop."""
        stop = False
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None and fn(self, *args):
                stop = True
        return stop

    # -- the loop ---------------------------------------------------------------------------
    def run(self, resume: bool = False) -> TrainResult:
        """Train until ``steps`` (continuing from ``last.pt`` when ``resume``).

        The main process holds the run folder's lock (:class:`~metalearn.runs.RunLock`) throughout,
        so a second writer is refused; ``config.yaml`` is written only once the checkpoint to
        resume from has loaded and the step count is checked."""
        lock = RunLock(self.run_dir.path, self.lock_advice).acquire() if self.dist.is_main else None
        try:
            return self._run(resume)
        finally:
            if lock is not None:
                lock.release()

    def _run(self, resume: bool) -> TrainResult:
        self._start(resume)
        log = MetricsLog(self.run_dir.metrics_path, self.run_dir.tb_dir) if self.dist.is_main else None
        bar = tqdm(total=self.steps, initial=self.step, disable=not self.progress, unit="step",
                   mininterval=0.5, dynamic_ncols=True, desc=f"{self.algorithm.name}")
        self._log, self._bar = log, bar
        ended = ""   # why the loop stopped before ``steps``: time_limit, stopped or interrupted
        self._t0 = time.perf_counter()
        prior, first_step, loop_start = self.seconds, self.step, self._t0
        try:
            with _StopFlag() as stop, self._backend_flags():
                while self.step < self.steps and not ended:
                    value = self._meta_step()
                    stop_asked = self._call("on_step", self.step, value)
                    bar.update(1)
                    out_of_time = self.time_limit is not None and self.step < self.steps and self.dist.any(
                        self._out_of_time(prior, first_step, loop_start))
                    stop_asked = self._after_step(out_of_time) or stop_asked
                    ended = self._why_stop(out_of_time, stop_asked, stop.set)
        finally:
            bar.close()
            if log is not None:
                log.close()
        result = TrainResult(self.step, self.best_val, self.best_step, ended == "interrupted", self.seconds,
                             ended == "time_limit", ended == "stopped")
        self._call("on_end", result)
        return result

    def _start(self, resume: bool) -> None:
        """Load the checkpoint to resume from (or refuse a folder that holds a run), then write
        ``config.yaml`` (and ``fitted.json`` for a family that fits something to its data: a
        table's encoder and group split) and cut the metrics log back to the checkpoint's step."""
        if resume:
            self.load()
            if self.step > self.steps:
                raise RunError(f"{self.run_dir.path} is already at step {self.step}, past the {self.steps} "
                               f"steps asked for; give --steps of at least {self.step} (or evaluate the "
                               f"run as it is)")
        elif self.dist.is_main and self.run_dir.last_checkpoint.is_file():
            raise RunError(f"{self.run_dir.path} already holds a run; resume it (metalearn train --resume "
                           f"{self.run_dir.path}, or resume=True) or choose another folder")
        if self.dist.is_main:
            if self.config is not None:
                self.run_dir.save_config(self.config)
            fitted = getattr(self.tasks, "fitted_state", None)
            state = fitted() if callable(fitted) else None
            if state is not None:   # what the family fitted to its data: the run folder holds it
                self.run_dir.save_fitted(state)
            if resume:
                self.run_dir.truncate_metrics(self.step)

    def _meta_step(self) -> Tensor:
        """One meta-step on a fresh meta-batch: the meta-gradient (over processes, or by CUDA-graph
        replay) and the outer step; returns the meta-loss (on the device, read later)."""
        started = time.perf_counter()
        batch = self.tasks.sample(self.meta_batch, self.task_rng).to(self.device, non_blocking=True)
        self.algorithm.on_step(self.step, self.steps)
        self._set_lr()
        self.optimizer.zero_grad(set_to_none=True)
        if self.dist.active:
            local = self.dist.local_batch(batch)
            share = local.total_weight / batch.total_weight
            value = self.dist.sum(self.algorithm.meta_backward(local, scale=share) * share)
        elif self.graphed is not None:
            value = self.graphed(batch)  # meta-loss and gradients by graph replay
        else:
            value = self.algorithm.meta_backward(batch)
        self._pending.append(value)
        for key, v in self.algorithm.last_metrics.items():
            self.extra.setdefault(key, []).append(v)
        if self.sync_every_step:
            self._check_losses(self.step + 1)
        self.dist.all_reduce_grads(self.algorithm)
        if getattr(self.optimizer, "uses_closure", False):
            # re-evaluates on the same tasks; torch's stub types the closure's loss as a float, but
            # a closure returns the loss tensor (the documented use)
            self.optimizer.step(self.algorithm.closure(batch))  # type: ignore[arg-type]
            # an outer step that reports numbers about itself (a trust region's KL, line-search step)
            for key, v in getattr(self.optimizer, "last", {}).items():
                self.extra.setdefault(f"outer_{key}", []).append(v)
        else:
            self.optimizer.step()
        if self.algorithm.rate_metrics:
            self.extra.setdefault("step_seconds", []).append(time.perf_counter() - started)
        self.step += 1
        return value

    def _after_step(self, out_of_time: bool) -> bool:
        """The step-end callbacks (``step_end``: losses read, training row, validation with the
        best checkpoint, the row written, checkpoints); True when a validation hook asks to stop."""
        end = StepEnd(self.step, self.step == self.steps or out_of_time)
        for callback in self.step_end:
            callback.on_step_end(self, end)
        return end.stop_asked

    def _keep_if_best(self, value: float) -> None:
        if self._better(value):
            self.best_val, self.best_step = value, self.step
            if self.dist.is_main:
                self._write_checkpoint(self.run_dir.best_checkpoint,
                                       {"step": self.step, "model": self.algorithm.state_dict(),
                                        self.select: self.best_val, "algorithm": self.algorithm.name})

    def _log_row(self, row: dict[str, Any]) -> None:
        self._tick()
        row["seconds"] = round(self.seconds, 3)
        if self._log is not None:
            self._log.log(self.step, **row)
        shown = {k[6:] if k.startswith("train_") else k: f"{v:.4g}" for k, v in row.items()
                 if k in self.algorithm.progress_metrics}
        self._bar.set_postfix(loss=f"{self.last_loss:.4f}", best_val=f"{self.best_val:.4f}", **shown, refresh=False)

    def _out_of_time(self, prior: float, first_step: int, loop_start: float) -> bool:
        """Whether the next meta-step would leave too little of the time limit for the final
        validation and checkpoint: the command's wall time so far (beside ``prior`` seconds of
        earlier sessions), one more meta-step, a validation (the last one's cost, or before the
        first, the meta-steps' cost for as many tasks) and two checkpoint writes."""
        assert self.time_limit is not None
        now = time.perf_counter()
        step_cost = (now - loop_start) / max(1, self.step - first_step)
        tasks = self.val_batch.num_tasks
        val_cost = self._val_cost if self._val_cost is not None else step_cost * max(1.0, tasks / self.meta_batch)
        return prior + (now - self.started) + step_cost + val_cost + 2 * self._write_cost >= self.time_limit

    def _tick(self) -> None:
        """Add the wall time since the last tick to ``seconds``."""
        now = time.perf_counter()
        self.seconds += now - self._t0
        self._t0 = now

    def _why_stop(self, out_of_time: bool, stop_asked: bool, signalled: bool) -> str:
        """Why to stop before ``steps`` ("" to go on); a stop other than the time limit (whose step
        was just checkpointed) checks the losses and saves first."""
        if out_of_time:
            return "time_limit"
        for reason, asked in (("stopped", stop_asked), ("interrupted", signalled)):
            if self.dist.any(asked) and self.step < self.steps:
                self._check_losses(self.step)
                self.seconds += time.perf_counter() - self._t0
                self.save()
                return reason
        return ""

    def _extra_row(self) -> dict[str, float]:
        """The mean of each of the algorithm's step metrics since the last row (``train_<key>``, with
        ``train_step_seconds`` for an algorithm with ``rate_metrics``); such a count becomes a rate
        per second of the meta-steps it came from (``<key>_per_s``)."""
        rates = self.algorithm.rate_metrics
        row = {f"train_{k}": sum(v) / len(v) for k, v in self.extra.items() if v and k not in rates}
        seconds = max(sum(self.extra.get("step_seconds", [])), 1e-9)
        for key in rates:
            if self.extra.get(key) and self.extra.get("step_seconds"):
                row[f"{key}_per_s"] = sum(self.extra[key]) / seconds
        self.extra.clear()
        return row

    def _backend_flags(self) -> Any:
        """On CUDA, cuDNN autotuning (fixed episode shapes) for this training only."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        cudnn = torch.backends.cudnn
        return cudnn.flags(enabled=cudnn.enabled, benchmark=True, deterministic=cudnn.deterministic,
                           allow_tf32=cudnn.allow_tf32)

    def _check_losses(self, last_step: int) -> None:
        """Read the meta-losses not yet read (the last one of meta-step ``last_step``, counting from
        1) into the log window; stop at the first non-finite one."""
        if not self._pending:
            return
        values = torch.stack(self._pending).tolist()
        self._pending.clear()
        for i, value in enumerate(values):
            if not math.isfinite(value):
                at = f"the meta-loss became {value} at step {last_step - len(values) + 1 + i}; stopped"
                if self.run_dir.last_checkpoint.is_file():
                    raise MetalearnError(
                        f"{at}, and {self.run_dir.last_checkpoint} keeps the last good weights (step "
                        f"{self._saved_step()}); lower train.lr or algo.inner_lr and resume or retrain")
                raise MetalearnError(f"{at} before the first checkpoint, so there is nothing to resume; "
                                     f"delete {self.run_dir.path} (rm -r {self.run_dir.path}) and train "
                                     f"again with a lower train.lr or algo.inner_lr")
            self.window = (self.window[0] + value, self.window[1] + 1)

    def _saved_step(self) -> int:
        try:
            return int(load_checkpoint(self.run_dir.last_checkpoint)["step"])
        except MetalearnError:
            return 0


def meta_train(algorithm: Algorithm, tasks: Any, out: Path | str, *, steps: int,
               resume: bool = False, **kwargs: Any) -> TrainResult:
    """Meta-train ``algorithm`` on ``tasks`` into the run folder ``out``; see :class:`Trainer`.

    With ``METALEARN_SHORT=1`` (:mod:`metalearn.config.short_mode`) the trainer caps the steps and
    validation tasks, as for the command line.
    """
    return Trainer(algorithm, tasks, out, steps=steps, **kwargs).run(resume=resume)
