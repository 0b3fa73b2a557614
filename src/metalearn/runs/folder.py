"""A run is a folder: ``config.yaml``, ``metrics.jsonl``, ``tb/`` (TensorBoard events),
``checkpoints/{last,best}.pt``, and what ``evaluate`` and ``report`` write. Every write is atomic
(a temporary file in the same folder, fsync, then rename), so a killed process never leaves a
half-written file behind.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .._util.files import atomic_write_text
from ..config import Config, config_from_dict, migrate_config
from ..errors import ConfigError, RunError, one_line, yaml_problem
from .lock import RunLock


class Run:
    """Paths and readers/writers of one run folder."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    # paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def fitted_path(self) -> Path:
        """What the run's task family fitted to its data (``fitted.json``: a table's encoder, group
        split and the data file's path and SHA-256), so the run is used again without refitting."""
        return self.path / "fitted.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def tb_dir(self) -> Path:
        return self.path / "tb"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoint_dir / "best.pt"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    # opening an existing run
    @classmethod
    def open(cls, path: Path | str) -> Run:
        """An existing run folder; a clear ``RunError`` if it is missing or is not a run."""
        run = cls(path)
        if not run.path.is_dir():
            raise RunError(f"run folder {run.path} does not exist; pass the --out folder of a "
                           f"'metalearn train' run")
        if not run.config_path.is_file():
            raise RunError(f"{run.path} is not a metalearn run: {run.config_path.name} is missing; "
                           f"pass the --out folder of a 'metalearn train' run")
        return run

    def save_config(self, cfg: Config | dict[str, Any]) -> None:
        data = cfg if isinstance(cfg, dict) else cfg.to_dict()
        atomic_write_text(self.config_path, yaml.safe_dump(data, sort_keys=False))

    def save_fitted(self, state: dict[str, Any]) -> None:
        atomic_write_text(self.fitted_path, json.dumps(state, indent=1, sort_keys=True))

    def load_fitted(self) -> dict[str, Any] | None:
        """The run's ``fitted.json`` (None for a family that fits nothing, or a run from before runs kept it)."""
        if not self.fitted_path.is_file():
            return None
        try:
            state = json.loads(self.fitted_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunError(f"cannot read {self.fitted_path}: {one_line(exc)}; it is written by training, "
                           f"so train the run again") from None
        if not isinstance(state, dict):
            raise RunError(f"{self.fitted_path} is not what training writes (a JSON object); train the run again")
        return state

    def load_config(self) -> Config:
        """The run's config, with what its task family fitted to its data (``fitted``)."""
        cfg = self._read_config()
        cfg.fitted = self.load_fitted()
        return cfg

    def _read_config(self) -> Config:
        try:
            data = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise RunError(f"{self.config_path} is not a text file (it holds bytes that are not UTF-8); "
                           f"restore it from the checkpoint's copy or train again") from None
        except yaml.YAMLError as exc:
            raise RunError(f"cannot read {self.config_path}: {yaml_problem(exc)}") from None
        except OSError as exc:
            raise RunError(f"cannot read {self.config_path}: {one_line(exc)}") from None
        try:
            return config_from_dict(migrate_config(data or {}))
        except ConfigError as exc:
            raise RunError(f"{self.config_path} is not a valid metalearn config: {exc}") from None

    def read_metrics(self, warn: bool = False) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl``: JSON objects with a numeric ``step``. Other lines (one cut
        by a kill, or edited by hand) are skipped, with a warning on stderr when ``warn``."""
        if not self.metrics_path.is_file():
            return []
        rows, skipped = [], []
        text = self.metrics_path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            step = row.get("step") if isinstance(row, dict) else None
            if isinstance(step, (int, float)) and not isinstance(step, bool):
                rows.append(row)
            else:
                skipped.append(number)
        if skipped and warn:
            shown = ", ".join(map(str, skipped[:5])) + (" ..." if len(skipped) > 5 else "")
            print(f"metalearn: warning: skipped {len(skipped)} line(s) of {self.metrics_path} that are not "
                  f"metric rows (a JSON object with a numeric step): line {shown}", file=sys.stderr)
        return rows

    def truncate_metrics(self, last_step: int) -> None:
        """Drop metric rows after ``last_step`` (used when resuming from a checkpoint), and lines
        that are not metric rows (with a warning)."""
        rows = [r for r in self.read_metrics(warn=True) if r["step"] <= last_step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

    def is_empty(self) -> bool:
        """No folder yet, or one with nothing in it but a lock file."""
        return not self.path.exists() or (self.path.is_dir() and all(
            p.name == RunLock.NAME for p in self.path.iterdir()))

    def has_run(self) -> bool:
        """The folder holds (the start of) a metalearn run: a metalearn config beside its metrics
        or checkpoints (a user's own ``config.yaml`` alone is not a run)."""
        if not (self.config_path.is_file() and (self.metrics_path.is_file() or self.checkpoint_dir.is_dir())):
            return False
        try:
            self.load_config()
        except RunError:
            return False
        return True

    def check_new(self) -> None:
        """Refuse a path that cannot hold a new run: a file, a folder with a run in it, or a
        non-empty folder that is not a run (the user's own files are never written into)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"--out {self.path} is a file, not a folder; choose a new folder for the run")
        self.lock().check_free()
        if self.is_empty():
            return
        if self.last_checkpoint.is_file():
            raise RunError(f"{self.path} already holds a run; continue it with "
                           f"'metalearn train --resume {self.path}' or choose another --out")
        if self.has_run():
            raise RunError(f"{self.path} holds a run that stopped before its first checkpoint (nothing to "
                           f"resume); delete it (rm -r {self.path}) and train again, or choose another --out")
        raise RunError(f"{self.path} is not empty and is not a metalearn run; choose a new or empty folder "
                       f"for --out (metalearn never writes into a folder of other files)")

    def check_writable(self, sub: str = "") -> None:
        """Fail early, naming the folder and the cause, if ``sub`` of the run cannot be written."""
        folder = self.path / sub
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test.")
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            raise RunError(f"cannot write to {folder}: {exc.strerror or exc}; make it writable or copy "
                           f"the run folder somewhere writable") from None

    def lock(self, advice: str = "wait for it to finish (or stop it), or choose another --out") -> RunLock:
        """The run's writer lock; ``advice`` is what a refused writer is told to do."""
        return RunLock(self.path, advice)

    def find_checkpoint(self, which: str = "best") -> Path:
        """``best`` (falls back to ``last``), ``last``, or a kept ``step-N``."""
        if which not in ("best", "last"):
            path = self.checkpoint_dir / f"{which}.pt"
            if not path.is_file():
                kept = sorted(p.stem for p in self.checkpoint_dir.glob("step-*.pt"))
                raise RunError(f"no checkpoint {which!r} in {self.checkpoint_dir}; choose best, last"
                               + (f" or one of {', '.join(kept)}" if kept else ""))
            return path
        order = [self.best_checkpoint, self.last_checkpoint] if which == "best" else [self.last_checkpoint]
        for p in order:
            if p.is_file():
                return p
        raise RunError(f"no checkpoint in {self.checkpoint_dir}; the run stopped before its first "
                       f"checkpoint, train it again or resume with 'metalearn train --resume {self.path}'")
