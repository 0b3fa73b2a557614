"""Pictures of grouped-table runs (a task per patient, hospital or site):

* ``support_size.png``: each method's error against the number of the group's own rows it saw
  (mean over held-out groups with 95% CIs): where adaptation starts to pay;
* ``forecasts.png``: one held-out group's targets along time with the meta-learned model's
  predictions before and after adaptation on its support rows, and the family's reference forecast
  (persistence for glucose); for a classifier, the probability given to the true class.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._util.files import atomic_write_png
from .._util.seeding import generator
from ..algorithms import Algorithm
from ..evaluation.groups import GroupedFamily, GroupEvaluation
from ..evaluation.stats import mean_ci
from ..runs import Run


def plot_support_size(run: Run, plt: Any, result: GroupEvaluation) -> Path:
    """Error against support size, one line per method (meta-learned lines solid, baselines dashed)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    sizes = result.sizes
    colours = plt.get_cmap("tab20").colors
    methods = list(result.scores)
    for i, m in enumerate(methods):
        ks = [k for k in sizes if str(k) in result.scores[m]]
        stats = [mean_ci(result.values(m, k)) for k in ks]
        mean = np.array([s[0] for s in stats])
        ci = np.array([s[1] if np.isfinite(s[1]) else 0.0 for s in stats])
        # a small horizontal offset per method keeps the 95% CI bars apart
        xs = np.array(ks, dtype=float) * (1 + 0.012 * (i - len(methods) / 2))
        ax.errorbar(xs, mean, yerr=ci, fmt="--o" if m in result.baselines else "-o", ms=4, capsize=2, lw=1.2,
                    color=colours[i % len(colours)], label=m)
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(k) for k in sizes])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("support rows of the new group (k)")
    ax.set_ylabel(result.metric)
    ax.set_title(f"{result.family}: {len(result.groups)} held-out groups (mean, 95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    out = run.report_dir / "support_size.png"
    atomic_write_png(fig, out)
    plt.close(fig)
    return out


def plot_forecasts(run: Run, plt: Any, algo: Algorithm, family: GroupedFamily, seed: int, steps: int,
                   shots: int) -> Path:
    """The first held-out group's query rows (of the groups with rows left after ``shots``
    support rows): truth, the meta-learned model before and after ``steps`` inner steps on the
    support rows, and the family's reference forecasts."""
    g = next((g for g in family.all_groups if family.can_evaluate(g, shots)), family.all_groups[0])
    s, q = family.split_for_eval(g, shots, generator("report", seed))
    frame = g.frame.iloc[q.numpy()]
    x = g.time[q].numpy() if g.time is not None else np.arange(len(q))
    xs = g.time[s].numpy() if g.time is not None else s.numpy()
    fig, ax = plt.subplots(figsize=(11, 4))
    with torch.no_grad():
        before = algo.adapt(g.x[s], g.y[s], steps=0)(g.x[q])
    after = algo.adapt(g.x[s], g.y[s], steps=steps)(g.x[q]).detach()
    name = algo.label()
    if family.encoder.classification:
        truth = g.y[q]
        for out, label in ((before, "before adaptation"), (after, f"after {steps} steps")):
            p = torch.softmax(out.float(), -1).gather(1, truth[:, None])[:, 0].numpy()
            ax.plot(x, p, ".", label=f"{name} {label}: P(true class), accuracy "
                                     f"{100 * float((out.argmax(-1) == truth).float().mean()):.0f}%")
        ax.set_ylabel("probability of the true class")
    else:
        truth = family.encoder.to_target(g.y[q], frame)
        ax.plot(x, truth, color="k", lw=1.5, label="truth")
        for fn_name, fn in family.domain_baselines().items():
            pred = fn(g, s, q)
            ax.plot(x, pred, ":", lw=1, label=f"{fn_name} (RMSE {np.sqrt(np.mean((pred - truth) ** 2)):.2f})")
        for out, label in ((before, "before adaptation"), (after, f"after {steps} steps on the support")):
            pred = family.encoder.to_target(out, frame)
            ax.plot(x, pred, lw=1, label=f"{name} {label} (RMSE {np.sqrt(np.mean((pred - truth) ** 2)):.2f})")
        ax.set_ylabel(f"{family.spec.target}{f' ({family.units})' if family.units else ''}")
    lo = ax.get_ylim()[0]
    ax.plot(xs, np.full(len(xs), lo), "|", color="tab:purple", ms=10, label=f"{len(s)} support rows (times)")
    ax.set_xlabel(family.spec.time or "query row")
    ax.set_title(f"{family.name}: held-out group {g.name!r}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    out_path = run.report_dir / "forecasts.png"
    atomic_write_png(fig, out_path)
    plt.close(fig)
    return out_path
