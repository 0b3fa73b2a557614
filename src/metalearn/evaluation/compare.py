"""Compare several runs on exactly the same held-out episodes: accuracy (or loss) before and after
adaptation with 95% CIs, adaptation time per task, and meta-training time; as a Markdown table
and a PNG bar chart. Optionally adds the from-scratch baseline of Chen et al. (2019).

Runs trained at different image sizes are compared on the same episodes too: the episodes are drawn
once (classes and drawings), and each run sees them at its own image size.
"""
from __future__ import annotations

import copy
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._util.files import atomic_write_bytes, atomic_write_text
from .._util.seeding import generator
from ..algorithms import get_algorithm
from ..errors import ConfigError
from ..protocols import TaskFamily
from ..runs import Run, load_checkpoint
from ..training.build import build_model, build_tasks, test_ways
from ..training.loading import load_algorithm
from .adaptation import CurveStats, curve_values, metric_fn
from .stats import Paired, paired


@dataclass
class Row:
    """One line of ``metalearn compare``'s table: a run, its inner steps, the score before and after
    (mean, CI half-width)."""
    name: str
    steps: int
    before: tuple[float, float]
    after: tuple[float, float]
    adapt_ms: float
    train_s: float | None
    versus: Paired | None = None   # paired difference to the reference method, on the same episodes


def _test_family(cfg: Any, image_size: int | None = None) -> Any:
    """The test episodes of ``cfg`` (the reference run's), rendered at ``image_size`` if given: the
    episodes' classes and drawings do not depend on the size, so every run meets the same ones."""
    test_cfg = copy.deepcopy(cfg)
    test_cfg.task.ways = test_ways(cfg)
    if image_size is not None:
        test_cfg.task.image_size = image_size
    return build_tasks(test_cfg, "test", shots=cfg.task.shots, queries=cfg.eval.queries)


def _signature(cfg: Any) -> tuple[Any, ...]:
    return (cfg.task.family, cfg.task.protocol, test_ways(cfg), cfg.task.shots)


def _time_adapt(algo: Any, family: TaskFamily, steps: int, n: int = 10) -> float:
    device = next(algo.parameters()).device
    batch = family.sample(n, generator("timing", 0)).to(device)
    t0 = time.perf_counter()
    for i in range(n):
        algo.adapt(batch.support_x[i], batch.support_y[i], steps=steps)
    return 1000 * (time.perf_counter() - t0) / n


def compare_runs(paths: list[Path | str], episodes: int = 600, scratch: bool = False,
                 scratch_steps: int = 100, out: Path | str = "compare",
                 device: str = "cpu") -> tuple[str, list[Path]]:
    """Evaluate ``paths`` on the same test episodes (adapting on ``device``); returns the Markdown
    table and the files written."""
    if not paths:
        raise ConfigError("name at least one run folder to compare")
    runs = [Run.open(p) for p in paths]
    cfgs = [r.load_config() for r in runs]
    sig = _signature(cfgs[0])
    for r, c in zip(runs, cfgs):
        if _signature(c) != sig:
            raise ConfigError(f"{r.path} is tested on {_signature(c)} but {runs[0].path} on {sig} "
                              f"(family, protocol, ways, shots); compare runs of one setting")
    base_cfg = cfgs[0]
    Run(out).check_writable()  # before minutes of evaluation, not after
    family = _test_family(base_cfg)
    sizes = {c.task.image_size for c in cfgs}
    families = {size: family if size == base_cfg.task.image_size else _test_family(base_cfg, size) for size in sizes}
    metric = metric_fn(family.metric)
    rows: list[Row] = []
    entries: list[tuple[str, Any, int, float | None, Any]] = []
    for r, c in zip(runs, cfgs):
        algo = load_algorithm(r, c).to(device)
        steps = max(c.eval.steps) if algo.gradient_based else 0
        seconds = float(load_checkpoint(r.last_checkpoint).get("seconds", 0.0)) if r.last_checkpoint.is_file() else None
        size = c.task.image_size
        label = algo.label() + (f" {size}px" if len(sizes) > 1 else "")
        entries.append((f"{label} [{r.path.name}]", algo, steps, seconds, families[size]))
    if scratch:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build_model(base_cfg, family)
        baseline = get_algorithm("scratch")(model, inner_steps=scratch_steps, loss=family.loss).eval().to(device)
        entries.append(("from scratch (Adam, 100 steps)", baseline, scratch_steps, None, family))
    better = "higher" if family.metric.higher_is_better else "lower"
    reference: Tensor | None = None
    for name, algo, steps, seconds, fam in entries:
        curve = curve_values(algo, fam, episodes, generator("test", base_cfg.eval.seed), steps, metric, chunk=50)
        st = CurveStats.from_curve(curve, loss=metric is None)
        after = curve[:, -1]
        versus = None if reference is None else paired(after, reference, better)
        reference = after if reference is None else reference
        rows.append(Row(name, steps, st.at(0), st.at(steps), _time_adapt(algo, fam, steps), seconds, versus))
    unit = family.metric.name
    ref_name = rows[0].name.split(" [")[0]
    head = (f"{episodes} test episodes of {sig[0]} {sig[2]}-way {sig[3]}-shot (test seed {base_cfg.eval.seed}); "
            f"{unit}, mean ± 95% CI; every method on the same episodes, so each is also given as its paired "
            f"difference to the reference ({ref_name}, the first run) with the episodes it wins and loses\n\n"
            f"| method | before | after | after - {ref_name} | won / lost | inner steps | adaptation ms/task | "
            f"meta-training |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head] + [f"| {r.name} | {r.before[0]:.2f} ± {r.before[1]:.2f} | {r.after[0]:.2f} ± {r.after[1]:.2f} | "
                      f"{'(reference)' if r.versus is None else r.versus.cell()} | "
                      f"{'-' if r.versus is None else f'{r.versus.wins} / {r.versus.losses}'} | "
                      f"{r.steps} | {r.adapt_ms:.1f} | {'-' if r.train_s is None else f'{r.train_s / 60:.1f} min'} |"
                      for r in rows]
    table = "\n".join(lines)
    out = Path(out)
    atomic_write_text(out / "compare.md", table + "\n")
    written = [out / "compare.md"]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return table, written
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 2, 4))
    xs = range(len(rows))
    ax.bar(xs, [r.after[0] for r in rows], yerr=[r.after[1] for r in rows], capsize=4, color="tab:blue",
           label="after adaptation")
    ax.scatter(xs, [r.before[0] for r in rows], color="tab:gray", zorder=3, label="before")
    ax.set_xticks(list(xs), [r.name.split(" [")[0] for r in rows], rotation=20, ha="right")
    ax.set_ylabel(unit)
    ax.set_title(f"{sig[0]} {sig[2]}-way {sig[3]}-shot, {episodes} episodes (95% CI)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(out / "compare.png", buf.getvalue())
    written.append(out / "compare.png")
    return table, written
