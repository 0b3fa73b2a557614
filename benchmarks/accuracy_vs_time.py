"""Test accuracy against meta-training CPU-minutes, one curve per algorithm, on the same episodes.

Train each algorithm with kept checkpoints, one thread each (two runs at a time on two cores), e.g.

    metalearn train omniglot-20w1s-anil --out curve/anil --set train.time_limit=20 --set train.threads=1 \\
        --set train.val_every=100000 --set "train.keep=[25,50,100,200,300,400,500]"

then score every kept checkpoint (and the last) on the same test episodes:

    python benchmarks/accuracy_vs_time.py curve/anil curve/mamlpp curve/maml --episodes 200 [--png curve.png]

The time of a checkpoint is the run's meta-training seconds at that step (``metrics.jsonl``,
interpolated between logged steps); validation is not counted. Accuracy is after 10 inner steps
(the family's evaluation), mean ± 95% CI over the episodes (test seed of the config).
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from metalearn.evaluation.registry import evaluate_run
from metalearn.runs import Run


def seconds_at(run: Run, step: int) -> float:
    rows = [(r["step"], r["seconds"]) for r in run.read_metrics() if "seconds" in r]
    rows.sort()
    for (s0, t0), (s1, t1) in zip(rows, rows[1:]):
        if s0 <= step <= s1:
            return t0 + (t1 - t0) * (step - s0) / max(1, s1 - s0)
    return rows[-1][1] * step / max(1, rows[-1][0])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--png", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    curves: dict[str, list[tuple[int, float, float, float]]] = {}
    for path in args.runs:
        run = Run.open(path)
        kept = sorted(int(m.group(1)) for f in run.path.glob("checkpoints/step-*.pt")
                      if (m := re.match(r"step-(\d+)\.pt", f.name)))
        last = int(torch.load(run.last_checkpoint, weights_only=True, map_location="cpu")["step"])
        points = []
        for step in [s for s in kept if s < last] + [last]:
            which = "last" if step == last else f"step-{step}"
            res = evaluate_run(run.path, tasks=args.episodes, steps=[args.steps], baseline=False, progress=False,
                               checkpoint=which)
            mean, ci = next(iter(res.methods.values())).at(args.steps)
            points.append((step, seconds_at(run, step) / 60, mean, ci))
            print(f"{run.path.name} step {step}: {points[-1][1]:.1f} min, {mean:.2f} ± {ci:.2f}", flush=True)
        curves[run.path.name] = points
    print(f"\n| algorithm | meta-steps | CPU-minutes (1 thread) | accuracy after {args.steps} steps (%) |")
    print("|---|---:|---:|---:|")
    for name, points in curves.items():
        for step, minutes, mean, ci in points:
            print(f"| {name} | {step} | {minutes:.1f} | {mean:.2f} ± {ci:.2f} |")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for name, points in curves.items():
            xs = [p[1] for p in points]
            ys = [p[2] for p in points]
            ax.errorbar(xs, ys, yerr=[p[3] for p in points], marker="o", capsize=2, label=name)
        ax.set_xlabel("meta-training CPU-minutes (one thread)")
        ax.set_ylabel(f"test accuracy (%), {args.episodes} episodes")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.savefig(args.png, dpi=110, bbox_inches="tight")
    json.dump({k: v for k, v in curves.items()}, open(Path(args.png or "curves").with_suffix(".json"), "w"))


if __name__ == "__main__":
    main()
