"""A run is a folder: ``config.yaml``, ``metrics.jsonl``, ``tb/`` (TensorBoard events),
``checkpoints/{last,best}.pt``, and what ``evaluate`` and ``report`` write. Every write is atomic
(a temporary file in the same folder, fsync, then rename), so a killed process never leaves a
half-written file behind.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml

from .config import Config, config_from_dict
from .errors import ConfigError, RunError

CHECKPOINT_FORMAT = 1
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class Run:
    """Paths and readers/writers of one run folder."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    # paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

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
    def open(cls, path: Path | str) -> "Run":
        """An existing run folder; a clear ``RunError`` if it is missing or is not a run."""
        run = cls(path)
        if not run.path.is_dir():
            raise RunError(f"run folder {run.path} does not exist; pass the --out folder of a "
                           f"'metalearn train' run")
        if not run.config_path.is_file():
            raise RunError(f"{run.path} is not a metalearn run: {run.config_path.name} is missing; "
                           f"pass the --out folder of a 'metalearn train' run")
        return run

    def save_config(self, cfg: Config) -> None:
        atomic_write_text(self.config_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    def load_config(self) -> Config:
        try:
            data = yaml.safe_load(self.config_path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RunError(f"cannot read {self.config_path}: {exc}") from None
        try:
            return config_from_dict(data or {})
        except ConfigError as exc:
            raise RunError(f"{self.config_path} is not a valid metalearn config: {exc}") from None

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut by a kill: skip it
        return rows

    def truncate_metrics(self, last_step: int) -> None:
        """Drop metric rows after ``last_step`` (used when resuming from a checkpoint)."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= last_step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

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


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    """``torch.save`` to memory, then an atomic write: never a half-written checkpoint."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load with ``weights_only=True`` (tensors and plain containers, never pickled code)."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"checkpoint {path} is corrupt or not a metalearn checkpoint ({first}); "
                       f"use another checkpoint of the run or train again") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model" not in state:
        raise RunError(f"checkpoint {path} is not a metalearn checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def load_weights(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: Path | str) -> None:
    """Load weights, turning a shape or key mismatch into a message that names both models."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    extra = sorted(set(state_dict) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and torch.is_tensor(own[k]) and torch.is_tensor(state_dict[k])
              and own[k].shape != state_dict[k].shape]
    if missing or extra or shapes:
        detail = "; ".join(filter(None, [
            f"missing {', '.join(missing[:4])}" if missing else "",
            f"unexpected {', '.join(extra[:4])}" if extra else "",
            "; ".join(shapes[:4])]))
        raise RunError(f"checkpoint {source} was saved from a different model ({detail}); "
                       f"use the config the checkpoint was trained with")
    module.load_state_dict(state_dict)
