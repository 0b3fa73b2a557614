"""On a CPU machine: one process with T threads, or T processes with one thread each (torchrun)?

Runs ``metalearn train PRESET`` both ways for the same number of meta-steps, alternating, and
prints seconds per meta-step (between the logged steps 10 and STEPS-10, so start-up and the final
validation are left out), the median over ``--repeats``, and the ratio. The two ways compute the
same update (tests/test_distributed.py); only the speed differs.

    python benchmarks/procs_vs_threads.py [--preset omniglot-5w1s] [--workers 2] [--steps 60] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def seconds_per_step(run: Path, first: int, last: int) -> float:
    rows = {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    return (rows[last]["seconds"] - rows[first]["seconds"]) / (last - first)


def train(cmd_prefix: list[str], preset: str, out: Path, steps: int, threads: int, extra: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = cmd_prefix + ["train", preset, "--out", str(out), "--quiet", "--set", f"train.steps={steps}",
                        "--set", f"train.threads={threads}", "--set", "train.log_every=10",
                        "--set", f"train.val_every={steps}", "--set", f"train.ckpt_every={steps}", *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return seconds_per_step(out, 10, steps - 10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="omniglot-5w1s")
    ap.add_argument("--workers", type=int, default=2, help="threads of the one process = processes of the other")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data-dir", help="passed to metalearn train")
    args = ap.parse_args()
    if args.steps < 30 or args.steps % 10:
        ap.error("--steps must be a multiple of 10, at least 30")
    extra = ["--data-dir", args.data_dir] if args.data_dir else []
    single = [sys.executable, "-m", "metalearn"]
    multi = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.workers}",
             "-m", "metalearn"]
    times: dict[str, list[float]] = {"one process": [], "processes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            times["one process"].append(train(single, args.preset, Path(tmp) / "a", args.steps, args.workers, extra))
            times["processes"].append(train(multi, args.preset, Path(tmp) / "b", args.steps, 1, extra))
    one, many = (statistics.median(v) for v in times.values())
    print(f"{args.preset}, {args.steps} meta-steps per run, median of {args.repeats} (runs alternate)")
    print(f"| {'layout':<34} | {'s/meta-step':>11} | {'speed vs 1 process':>18} |")
    print(f"|{'-' * 36}|{'-' * 13}|{'-' * 20}|")
    print(f"| {f'1 process x {args.workers} threads':<34} | {one:>11.3f} | {1.0:>17.2f}x |")
    print(f"| {f'{args.workers} processes x 1 thread (torchrun)':<34} | {many:>11.3f} | {one / many:>17.2f}x |")


if __name__ == "__main__":
    main()
