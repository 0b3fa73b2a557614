"""Automated tuning of a preset's hyper-parameters with Optuna (``metalearn tune``).

Each trial is a normal training run in its own run folder (``DIR/trials/NNNN``) with the trial's
values applied as ``--set`` overrides; it reports its validation value at every validation, so
that a pruner (median by default, or Hyperband) stops unpromising trials early through the
trainer's ``on_validation`` callback. A trial's value is its run's best validation value (the
family's metric: lower is better for losses and errors, higher for accuracy), so selection never
looks at the test tasks.

Studies live in real storage: an SQLite file (``DIR/study.db``) by default, with heartbeats, so that
a trial left RUNNING by a killed process is marked failed and retried with the same values when the
study resumes; Optuna's journal file (``--storage journal``, ``DIR/journal.log``) for several
processes on one machine; or any database URL Optuna accepts for several machines. Running the
same command again resumes the study up to ``--trials`` finished trials.

Output: ``DIR/best.yaml`` (the best trial's full config: ``metalearn train DIR/best.yaml``),
``DIR/trials.md`` (a table of every trial), ``DIR/history.png`` (the optimisation history) and
``DIR/importance.png`` (parameter importances, fANOVA).
"""
from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .._util.files import atomic_write_png, atomic_write_text
from ..algorithms import get_spec
from ..config import Config, apply_overrides, validate
from ..errors import ConfigError, MetalearnError, RunError, one_line, yaml_problem
from ..protocols import declared
from ..runs import Run, RunLock
from ..tasks import get_task_family
from ..training.build import build_trainer

KINDS = ("log", "float", "int", "choice")
STUDY_PREFIX = "metalearn:"
HEARTBEAT_S = 30
GRACE_S = 90


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError("metalearn tune needs Optuna: pip install 'metalearn-torch[tune]'") from None
    return optuna


@dataclass(frozen=True)
class Dist:
    """One search dimension: ``log:LO:HI``, ``float:LO:HI``, ``int:LO:HI`` or ``choice:A,B,C``."""

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high))
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "log")

    def text(self) -> str:
        if self.kind == "choice":
            return f"{self.key}=choice:{','.join(map(str, self.choices))}"
        return f"{self.key}={self.kind}:{self.low:g}:{self.high:g}"


def parse_space(text: str, base: Config) -> Dist:
    """``"algo.inner_lr=log:0.01:1"`` -> :class:`Dist`, checked against the config (an unknown key
    or a value of the wrong type is a ConfigError that names the valid ones)."""
    if "=" not in text:
        raise ConfigError(f"--space expects KEY=DIST such as algo.inner_lr=log:0.01:1, got {text!r}")
    key, dist = (s.strip() for s in text.split("=", 1))
    kind, _, rest = dist.partition(":")
    if kind not in KINDS:
        raise ConfigError(f"--space {key}: unknown distribution {kind!r}; use one of log:LO:HI, float:LO:HI, "
                          f"int:LO:HI, choice:A,B,C")
    if kind == "choice":
        choices = tuple(_choice(key, c) for c in rest.split(",") if c.strip())
        if not choices:
            raise ConfigError(f"--space {key}: choice needs values, e.g. {key}=choice:4,8,16")
        out = Dist(key, kind, choices=choices)
        samples = list(choices)
    else:
        parts = rest.split(":")
        try:
            lo, hi = float(parts[0]), float(parts[1])
            if len(parts) != 2:
                raise ValueError
        except (ValueError, IndexError):
            raise ConfigError(f"--space {key}: expected {kind}:LOW:HIGH, e.g. {key}={kind}:1:10, "
                              f"got {dist!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi) or (kind == "log" and lo <= 0):
            raise ConfigError(f"--space {key}: need LOW < HIGH{' and LOW > 0 for log' if kind == 'log' else ''}, "
                              f"got {dist!r}")
        if kind == "int" and (lo != int(lo) or hi != int(hi)):
            raise ConfigError(f"--space {key}: int bounds must be integers, got {dist!r}")
        out = Dist(key, kind, lo, hi)
        samples = [int(lo), int(hi)] if kind == "int" else [lo, hi]
    for value in samples:   # the key exists and takes such values
        validate(apply_overrides(copy.deepcopy(base), [f"{key}={value!r}" if isinstance(value, str)
                                                       else f"{key}={value}"]))
    return out


def _choice(key: str, text: str) -> Any:
    """One value of a ``choice:`` list, read as plain YAML (no tags, no brackets)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--space {key}: the choice {text.strip()!r} is not a plain value "
                          f"({yaml_problem(exc)}); write the values comma-separated without brackets, "
                          f"e.g. {key}=choice:4,8,16") from None
    if isinstance(value, (list, dict)):
        raise ConfigError(f"--space {key}: the choice {text.strip()!r} is a {type(value).__name__}; write the values "
                          f"comma-separated without brackets, e.g. {key}=choice:4,8,16")
    return value


def default_space(cfg: Config) -> list[str]:
    """The search space of a preset: inner learning rate and steps (for algorithms with an inner
    loop), outer learning rate and meta-batch size, around the preset's values."""
    space = []
    spec = get_spec(cfg.algo.name)
    if spec.cls.gradient_based and spec.cls.trainable:
        lr = cfg.algo.inner_lr
        space += [f"algo.inner_lr=log:{lr / 10:g}:{min(lr * 10, 1.0) if lr < 1 else lr * 10:g}",
                  f"algo.inner_steps=int:1:{max(5, 2 * cfg.algo.inner_steps)}"]
    space += [f"train.lr=log:{cfg.train.lr / 10:g}:{cfg.train.lr * 10:g}",
              "train.meta_batch=choice:" + ",".join(str(b) for b in sorted({4, 8, 16, 32, cfg.train.meta_batch}))]
    return space


class _Pruning:
    """Trainer callback: report each validation value to the trial; stop the run when pruned."""

    def __init__(self, trial: Any, key: str) -> None:
        self.trial, self.key, self.pruned = trial, key, False

    def on_step(self, trainer: Any, step: int, loss: Any) -> bool:
        return False

    def on_end(self, trainer: Any, result: Any) -> None:
        pass

    def on_validation(self, trainer: Any, step: int, row: dict[str, float]) -> bool:
        value = row.get(self.key)
        if value is None or not math.isfinite(value):
            return False
        self.trial.report(value, step)
        self.pruned = bool(self.trial.should_prune())
        return self.pruned


def _heartbeat_storage(url: str) -> Any:
    """An RDB storage with heartbeats whose stale RUNNING trials (a killed process's) are failed and
    retried with the same values."""
    import warnings

    from optuna.storages import RDBStorage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # heartbeats are "experimental" in Optuna's terms since 2.8
        try:
            from optuna.storages import RetryHeartbeatStaleTrialCallback
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
        except ImportError:   # Optuna < 4.9
            from optuna.storages import RetryFailedTrialCallback
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              failed_trial_callback=RetryFailedTrialCallback(max_retry=2))


def _storage(out: Path, storage: str | None) -> Any:
    _optuna()
    if storage in (None, "sqlite"):
        return _heartbeat_storage(f"sqlite:///{out / 'study.db'}")
    if storage == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
        return JournalStorage(JournalFileBackend(str(out / "journal.log")))
    try:
        return _heartbeat_storage(storage)
    except Exception as exc:  # sqlalchemy's many errors: a bad URL, a server that cannot be reached
        raise ConfigError(f"--storage {storage}: Optuna cannot open it ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0]}); give a database URL such as "
                          f"postgresql://user@host/db, 'sqlite' or 'journal'") from None


def _sampler(name: str, seed: int) -> Any:
    optuna = _optuna()
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler {name!r}; choose tpe or random")


def _pruner(name: str, first: int, last: int) -> Any:
    """The pruner; ``first`` and ``last`` are the meta-steps of a trial's first validation and
    its end, which bound Hyperband's resource (Li et al. 2018): its rungs are then validations
    (first, 3 x first, ...), not Optuna's default of 1, 3, 9, ... steps and a maximum guessed
    from the first finished trial, which on a 1,000-step study makes seven brackets of a few
    trials each."""
    optuna = _optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min(first, last), max_resource=last, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}; choose median, hyperband or none")


@dataclass
class TuneResult:
    """What ``metalearn tune`` found: the best value, its parameters and trial, and where the study is stored."""
    best_value: float
    best_params: dict[str, Any]
    best_trial: int
    trials: int
    pruned: int
    seconds: float       # summed wall time of the trials (the study's CPU time on one thread each)
    best_config: Path
    table: Path


def _open_study(optuna: Any, preset: str, base: Config, out: Path, dists: Sequence[Dist], storage: str | None,
                sampler: str, pruner: str, seed: int) -> tuple[Any, bool]:
    """The study of ``preset`` in ``out`` (created, or loaded to resume it: from the same config and
    space only), with its sampler seeded past the trials already there; and whether it maximises."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    family = get_task_family(base.task.family).cls
    metric = declared(family, "metric")
    higher = bool(metric is not None and metric.higher_is_better and not metric.is_loss)
    name = STUDY_PREFIX + Path(preset).stem
    store = _storage(out, storage)
    existing = {s.study_name for s in optuna.get_all_study_summaries(store)}
    others = sorted(existing - {name})
    if others and name not in existing:
        raise ConfigError(f"the study storage in {out} holds {', '.join(others)}, not {name}; use another --out "
                          f"for a study of {Path(preset).stem}")
    study = optuna.create_study(study_name=name, storage=store, load_if_exists=True,
                                direction="maximize" if higher else "minimize",
                                sampler=_sampler(sampler, seed),
                                pruner=_pruner(pruner, base.train.val_every, base.train.steps))
    fixed = yaml.safe_dump(base.to_dict(), sort_keys=True)
    if study.user_attrs.get("config", fixed) != fixed:
        raise ConfigError(f"the study in {out} was started from another config (preset or --set values differ); "
                          f"use another --out, or the same preset and --set values to resume it")
    # A seeded sampler replays the same values from the start: a resumed study would repeat its
    # first trials, and two workers on one study would run the same trials side by side. So each
    # process continues the stream past the trials already there, and on storage that several
    # processes share, also apart from any worker started at the same moment.
    offset = len(study.get_trials(deepcopy=False)) + (0 if storage in (None, "sqlite") else os.getpid())
    study.sampler = _sampler(sampler, (seed + offset) % 2**32)
    texts = [d.text() for d in dists]
    if study.user_attrs.get("space", texts) != texts:
        raise ConfigError(f"the study in {out} searches {' '.join(study.user_attrs['space'])}, not "
                          f"{' '.join(texts)}; use another --out, or the same --space values to resume it")
    study.set_user_attr("config", fixed)
    study.set_user_attr("space", texts)
    _check_trial_folders(study, out)
    _retry_orphans(optuna, study)
    return study, higher


def _check_trial_folders(study: Any, out: Path) -> None:
    """Refuse trial folders that hold runs of trials this study does not know: its storage was
    lost or changed, and training into them would fail every trial."""
    known = {t.number for t in study.get_trials(deepcopy=False)}
    trials = out / "trials"
    foreign = sorted(f.name for f in trials.iterdir() if f.is_dir() and f.name.isdigit()
                     and int(f.name) not in known and Run(f).has_run()) if trials.is_dir() else []
    if foreign:
        listed = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ConfigError(f"{trials} holds runs of {len(foreign)} trials that the study's storage does not know "
                          f"({listed}): they belong to another study, or this study's storage was lost or changed "
                          f"(a deleted study.db, another --storage). Use another --out, or the storage that "
                          f"made them")


def _orphans(optuna: Any, study: Any) -> list[Any]:
    """RUNNING trials whose training process is gone: the run folder's lock file is still there
    (a finished training removes it) but no process holds it."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        lock = RunLock(t.user_attrs["run"]) if t.user_attrs.get("run") else None
        if lock is None or not lock.path.is_file():
            continue
        try:
            lock.check_free()
        except MetalearnError:   # a live process trains it
            continue
        out.append(t)
    return out


def _retry_orphans(optuna: Any, study: Any) -> None:
    """Fail the trials a killed process left RUNNING and queue them again with their values at
    once, rather than after the heartbeat's grace period (a re-run inside it left them RUNNING)."""
    import warnings

    from optuna.storages import RetryHeartbeatStaleTrialCallback
    for t in _orphans(optuna, study):
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "experimental" in Optuna's terms since 2.8
            RetryHeartbeatStaleTrialCallback(max_retry=2)(study, study._storage.get_trial(t._trial_id))


def _objective(optuna: Any, base: Config, out: Path, dists: Sequence[Dist], progress: bool) -> Any:
    """The study's objective: one trial trains a run in ``out/trials/NNNN`` with the values it
    suggests and returns its best validation value (pruned when it diverges or is cut short)."""

    def objective(trial: Any) -> float:
        cfg = copy.deepcopy(base)
        overrides = []
        for d in dists:
            v = d.suggest(trial)
            overrides.append(f"{d.key}={v!r}" if isinstance(v, str) else f"{d.key}={v}")
        cfg = validate(apply_overrides(cfg, overrides))
        folder = out / "trials" / f"{trial.number:04d}"
        if Run(folder).has_run():   # not a divergence: the folder is another study's (see _check_trial_folders)
            raise RunError(f"{folder} already holds a run that this study did not start; use another --out")
        trainer = build_trainer(cfg, folder, progress=progress)
        prune = _Pruning(trial, trainer.select)
        trainer.callbacks.append(prune)
        t0 = time.monotonic()
        trial.set_user_attr("run", str(folder))
        try:
            result = trainer.run()
        except MetalearnError as exc:   # the trial's values made training diverge: a bad region, not a bad study
            trial.set_user_attr("seconds", time.monotonic() - t0)
            trial.set_user_attr("steps", trainer.step)
            trial.set_user_attr("stopped", one_line(exc))
            raise optuna.TrialPruned() from None
        trial.set_user_attr("seconds", time.monotonic() - t0)
        trial.set_user_attr("steps", result.step)
        if prune.pruned:
            raise optuna.TrialPruned()
        if not math.isfinite(result.best_val):
            raise optuna.TrialPruned()
        return float(result.best_val)

    return objective


def tune(preset: str, base: Config, out: Path | str, trials: int, space: Sequence[str] = (),
         storage: str | None = None, sampler: str = "tpe", pruner: str = "median", seed: int = 0,
         time_limit: float | None = None, progress: bool = False) -> TuneResult:
    """Run (or resume) the study of ``preset`` (whose config, overrides applied, is ``base``) in
    ``out`` until it has ``trials`` finished trials or ``time_limit`` minutes have passed."""
    optuna = _optuna()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the study")
    if trials <= 0:
        raise ConfigError(f"--trials must be positive, got {trials}")
    dists = [parse_space(s, base) for s in (list(space) or default_space(base))]
    keys = [d.key for d in dists]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"--space names a key twice: {keys}")
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _run_study(optuna, preset, base, out, trials, dists, storage, sampler, pruner, seed, time_limit,
                          progress)
    except Exception as exc:
        cause = _storage_failure(exc)
        if cause is None:
            raise
        raise RunError(f"the study's storage in {out} failed ({cause}); free space there or give another --storage, "
                       f"then run the same command again: the study resumes from its finished trials") from None


def _storage_failure(exc: BaseException) -> str | None:
    """The database or disk error behind ``exc`` (a full disk under SQLite ends in Optuna's own
    assertion), as one line, the deepest cause first; None when the failure is not the storage's."""
    import sqlite3
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for e in reversed(chain):
        if isinstance(e, sqlite3.Error) or (isinstance(e, OSError) and e.errno in (28, 30, 122)):
            return (e.strerror if isinstance(e, OSError) and e.strerror else one_line(e))[:200]
    for e in reversed(chain):
        if type(e).__name__ in ("OperationalError", "DatabaseError", "StorageInternalError"):
            return one_line(e)[:200]
    return None


def _run_study(optuna: Any, preset: str, base: Config, out: Path, trials: int, dists: Sequence[Dist],
               storage: str | None, sampler: str, pruner: str, seed: int, time_limit: float | None,
               progress: bool) -> TuneResult:
    study, higher = _open_study(optuna, preset, base, out, dists, storage, sampler, pruner, seed)
    started = time.monotonic()
    objective = _objective(optuna, base, out, dists, progress)

    def finished() -> int:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        return len(study.get_trials(deepcopy=False, states=states))

    def failed() -> int:
        return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))

    while finished() < trials:
        if time_limit is not None and time.monotonic() - started > 60 * time_limit:
            break
        if failed() > trials:
            raise ConfigError(f"{failed()} trials of the study in {out} failed; see the trial folders in "
                              f"{out / 'trials'} and narrow --space")
        timeout = None if time_limit is None else max(1.0, 60 * time_limit - (time.monotonic() - started))
        study.optimize(objective, n_trials=1, timeout=timeout, catch=(ConfigError,))
    return _write_outputs(study, base, out, dists, higher)


def _write_outputs(study: Any, base: Config, out: Path, dists: Sequence[Dist], higher: bool) -> TuneResult:
    optuna = _optuna()
    done = study.get_trials(deepcopy=False)
    complete = [t for t in done if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError(f"no trial of the study in {out} completed (all pruned or failed); see {out / 'trials'}")
    best = study.best_trial
    cfg = validate(apply_overrides(copy.deepcopy(base), [
        f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in best.params.items()]))
    best_path = out / "best.yaml"
    head = (f"# best of {len(complete)} completed trials of a metalearn tune study (trial {best.number}, validation "
            f"value {best.value:.6g}); train it with: metalearn train --config {best_path}\n")
    atomic_write_text(best_path, head + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    seconds = sum(float(t.user_attrs.get("seconds", 0.0)) for t in done)
    rows = ["| trial | state | value | steps | seconds | " + " | ".join(d.key for d in dists) + " |",
            "|---:|---|---:|---:|---:|" + "---:|" * len(dists)]
    for t in done:
        value = "" if t.value is None else f"{t.value:.4g}"
        if t.state == optuna.trial.TrialState.PRUNED and "stopped" in t.user_attrs:
            value = "(diverged)"
        elif t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values:
            value = f"({t.intermediate_values[max(t.intermediate_values)]:.4g} when pruned)"
        params = [f"{t.params[d.key]:.4g}" if isinstance(t.params.get(d.key), float) else str(t.params.get(d.key, ""))
                  for d in dists]
        rows.append(f"| {t.number} | {t.state.name.lower()} | {value} | {t.user_attrs.get('steps', '')} | "
                    f"{float(t.user_attrs.get('seconds', 0)):.0f} | " + " | ".join(params) + " |")
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in done)
    table = out / "trials.md"
    atomic_write_text(table, f"Study {study.study_name}: {len(done)} trials ({len(complete)} complete, {pruned} "
                             f"pruned), {seconds / 60:.1f} trial-minutes; best trial {best.number}, validation "
                             f"value {best.value:.6g} ({'higher' if higher else 'lower'} is better)\n\n"
                      + "\n".join(rows) + "\n")
    _plots(study, out, complete, higher)
    return TuneResult(float(best.value), dict(best.params), best.number, len(done), pruned, seconds, best_path, table)


def _plots(study: Any, out: Path, complete: list[Any], higher: bool) -> None:
    """``history.png`` and ``importance.png`` with matplotlib (skipped without it)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    optuna = _optuna()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    xs = [t.number for t in complete]
    ys = [t.value for t in complete]
    ax.plot(xs, ys, "o", label="trial (complete)")
    # a pruned trial at the last value it reported before it was stopped
    pruned = [(t.number, t.intermediate_values[max(t.intermediate_values)]) for t in study.trials
              if t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values]
    if pruned:
        ax.plot(*zip(*pruned), "x", color="tab:gray", label="trial (pruned: its last value)")
    if ys:
        best = [max(ys[: i + 1]) if higher else min(ys[: i + 1]) for i in range(len(ys))]
        ax.step(xs, best, where="post", color="tab:red", label="best so far")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("best validation value of the trial")
    ax.set_title(study.study_name)
    ax.grid(alpha=0.3)
    ax.legend()
    atomic_write_png(fig, out / "history.png")
    plt.close(fig)
    if len(complete) >= 2 and study.best_trial.params:
        try:
            imp = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError):
            return
        fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.45 * len(imp)))
        names = list(imp)[::-1]
        ax.barh(names, [imp[n] for n in names])
        ax.set_xlabel("importance (fANOVA, normalised)")
        ax.set_title("parameter importances")
        atomic_write_png(fig, out / "importance.png")
        plt.close(fig)
