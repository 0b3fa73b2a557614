"""``metalearn info RUN``: what a run folder holds, without loading its model.

The family and algorithm, the meta-steps done (and of how many), the best validation value in the
units ``evaluate`` prints, the parameters it learned, the data it was trained on (path and SHA-256
for a table; the class split for an image folder) and the evaluations written so far.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from ..runs import Run, load_checkpoint


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="what a run folder is: family, algorithm, steps, best validation, parameters, data")
    p.add_argument("run", type=Path, help="a run folder (the --out of metalearn train)")


def _parameters(model: dict[str, Any]) -> list[tuple[str, int]]:
    """Learned values by the first part of their name (``model``, Meta-SGD's ``lrs``, ...)."""
    counts: dict[str, int] = {}
    for name, value in model.items():
        if hasattr(value, "numel") and value.is_floating_point():
            group = name.split(".")[0]
            counts[group] = counts.get(group, 0) + int(value.numel())
    return sorted(counts.items(), key=lambda kv: -kv[1])


def _best(state: dict[str, Any]) -> str:
    """The best validation value in the units ``evaluate`` prints (a checkpoint from before runs
    recorded them: the raw value)."""
    best, step = state.get("best_val"), state.get("best_step")
    if best is None or not math.isfinite(float(best)):
        return "none yet"
    sel = state.get("selected")
    if not isinstance(sel, dict):
        return f"{best:.4g} at step {step} (in training's units)"
    return f"{sel['name']} {float(best) * float(sel['scale']):.4g} at step {step}"


def _data(fitted: dict[str, Any] | None) -> list[str]:
    if not fitted:
        return []
    lines = []
    data = fitted.get("data")
    if isinstance(data, dict) and data.get("sha256"):
        lines.append(f"data:        {data.get('path') or data.get('source')} (sha256 {data['sha256']})")
    if fitted.get("root"):
        lines.append(f"data:        {fitted['root']} ({fitted.get('layout', 'image folders')})")
    parts = fitted.get("split")   # a table's groups or an image folder's classes, by split
    if isinstance(parts, dict):
        lines.append("split:       " + ", ".join(f"{k} {len(v)}" for k, v in parts.items() if isinstance(v, list)))
    return lines


def describe(path: Path) -> str:
    """The lines that ``metalearn info`` prints for the run folder ``path``."""
    run = Run.open(path)
    cfg = run.load_config()
    lines = [f"run:         {run.path}",
             f"family:      {cfg.task.family}",
             f"algorithm:   {cfg.algo.name}"]
    ckpt = run.last_checkpoint if run.last_checkpoint.is_file() else run.best_checkpoint
    if ckpt.is_file():
        state = load_checkpoint(ckpt)
        lines.append(f"meta-steps:  {state.get('step')} of {cfg.train.steps} in {float(state.get('seconds', 0)):.0f} s"
                     + ("" if ckpt == run.last_checkpoint else " (only the best checkpoint is left)"))
        lines.append(f"best val:    {_best(state)}")
        params = _parameters(state["model"])
        total = sum(n for _, n in params)
        lines.append(f"parameters:  {total:,} learned ({', '.join(f'{g} {n:,}' for g, n in params)})")
    else:
        lines.append("meta-steps:  none saved yet (no checkpoint)")
    lines += _data(run.load_fitted())
    evals = sorted((run.path / "eval").glob("*.json")) if (run.path / "eval").is_dir() else []
    if evals:
        lines.append(f"evaluations: {', '.join(e.stem for e in evals)} (eval/)")
    if run.report_dir.is_dir():
        pics = sorted(p.name for p in run.report_dir.glob("*.png"))
        lines.append(f"report:      {len(pics)} picture{'s' if len(pics) != 1 else ''} (report/)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(describe(args.run))
    return 0
