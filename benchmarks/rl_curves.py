"""Learning curves of several seeds of one meta-RL preset: the return of the meta-training tasks
before and after adaptation against meta-iteration, mean and spread (min to max) over the seeds,
as a table at chosen iterations and a PNG.

    python benchmarks/rl_curves.py runs/cheetah-s0 runs/cheetah-s1 runs/cheetah-s2 \
        --at 50,100,150 --png docs/rl-halfcheetah-dir.png

Each run folder's ``metrics.jsonl`` is read (``train_return_before``, ``train_return`` and
``val_return``); a value at an iteration is the mean of the 10 iterations up to it (one
meta-iteration's return is noisy: 20 tasks, each of 20 episodes).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def seeds(n: int) -> str:
    return f"{n} seed{'s' * (n != 1)}"


def smoothed(rows: list[dict], key: str, window: int = 10) -> dict[int, float]:
    pts = [(r["step"], r[key]) for r in rows if key in r]
    out = {}
    for i, (step, _) in enumerate(pts):
        recent = [v for _, v in pts[max(0, i - window + 1):i + 1]]
        out[step] = sum(recent) / len(recent)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--at", default="50,100,150", help="iterations for the table")
    ap.add_argument("--png", type=Path, help="write the curves here")
    args = ap.parse_args()
    curves = {key: [smoothed([json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()], key)
                    for run in args.runs] for key in ("train_return_before", "train_return")}
    print(f"{seeds(len(args.runs))} ({', '.join(r.name for r in args.runs)}); return of the meta-training tasks, "
          f"mean of the last 10 iterations, mean over seeds [min, max]\n")
    print("| iteration | before adaptation | after one step |\n|---:|---:|---:|")
    for it in (int(x) for x in args.at.split(",")):
        cells = []
        for key in ("train_return_before", "train_return"):
            vals = [c[it] for c in curves[key] if it in c]
            cells.append(f"{statistics.mean(vals):.1f} [{min(vals):.1f}, {max(vals):.1f}] ({seeds(len(vals))})"
                         if vals else "-")
        print(f"| {it} | {cells[0]} | {cells[1]} |")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4))
        for key, label, color in (("train_return_before", "before adaptation", "tab:blue"),
                                  ("train_return", "after one policy-gradient step", "tab:red")):
            steps = sorted(set.intersection(*(set(c) for c in curves[key])))
            mean = [statistics.mean(c[s] for c in curves[key]) for s in steps]
            lo = [min(c[s] for c in curves[key]) for s in steps]
            hi = [max(c[s] for c in curves[key]) for s in steps]
            several = len(args.runs) > 1
            ax.plot(steps, mean, color=color, label=f"{label} (mean of {seeds(len(args.runs))})" if several else label)
            ax.fill_between(steps, lo, hi, color=color, alpha=0.2)
        ax.set_xlabel("meta-iteration")
        ax.set_ylabel("return (mean of the last 10 iterations)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(", ".join(r.name for r in args.runs), fontsize=8)
        args.png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.png, dpi=110, bbox_inches="tight")
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
