"""A training step on a shared CPU: alone, and beside processes that compete for the cores.

On a 2-core machine a 2-thread Omniglot MAML step slowed 2.4x beside one CPU-bound process (a fair
share would cost at most 2x) and 25-30x beside two 2-thread trainings: OpenMP's worker threads
spin-wait for each other, and a thread whose core is taken stalls every other thread at each
barrier. This benchmark times the same second-order MAML meta-step (Conv4, Omniglot 5-way 1-shot
shapes, random pixels, so no data set is needed) in fresh processes under each layout, alternating,
and prints seconds per step and the slowdown against the step alone with the same threads:

    python benchmarks/under_load.py [--meta-batch 8] [--steps 6] [--repeats 2]

Layouts: the training's thread count (1, 2), the OpenMP wait policy (``OMP_WAIT_POLICY=PASSIVE``:
idle threads sleep instead of spinning), and the competition: nothing, one busy Python loop (one
core), or a second copy of the same training (two threads).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKER = r"""
import json, os, sys, time, torch
import metalearn as ml
from metalearn.tasks import TaskBatch
threads, meta_batch, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
algo = ml.MAML(ml.models.conv4(1, 5, 64, 28), inner_lr=0.4, inner_steps=1, loss="cross_entropy")
opt = torch.optim.Adam(algo.parameters(), 1e-3)
g = torch.Generator().manual_seed(0)
labels = torch.arange(5).repeat_interleave(1).expand(meta_batch, 5)
def batch():
    return TaskBatch(torch.rand(meta_batch, 5, 1, 28, 28, generator=g), labels,
                     torch.rand(meta_batch, 5, 1, 28, 28, generator=g), labels)
times = []
for i in range(steps + 1):
    b = batch()
    t0 = time.perf_counter()
    opt.zero_grad()
    algo.meta_backward(b)
    opt.step()
    if i:                      # the first step warms up
        times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""

BUSY = "while True:\n    pass\n"


def run_worker(threads: int, meta_batch: int, steps: int, passive: bool) -> float:
    env = dict(os.environ)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run([sys.executable, "-c", WORKER, str(threads), str(meta_batch), str(steps)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return statistics.median(json.loads(out.strip().splitlines()[-1]))


def competitors(kind: str, meta_batch: int) -> list[subprocess.Popen]:
    if kind == "none":
        return []
    if kind == "busy loop":
        return [subprocess.Popen([sys.executable, "-c", BUSY])]
    # a second 2-thread training that runs for as long as it is needed
    loop = WORKER.replace("for i in range(steps + 1):", "for i in iter(int, 1):")
    return [subprocess.Popen([sys.executable, "-c", loop, "2", str(meta_batch), "0"],
                             stdout=subprocess.DEVNULL)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meta-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6, help="timed meta-steps per measurement")
    ap.add_argument("--repeats", type=int, default=2, help="measurements per layout (median)")
    args = ap.parse_args()
    layouts = [(threads, passive, comp) for comp in ("none", "busy loop", "2-thread training")
               for threads in (2, 1) for passive in (False, True) if not (threads == 1 and passive)]
    results: dict[tuple, list[float]] = {lay: [] for lay in layouts}
    for _ in range(args.repeats):
        for lay in layouts:
            threads, passive, comp = lay
            procs = competitors(comp, args.meta_batch)
            try:
                time.sleep(1.0 if procs else 0.0)  # let the competition start
                results[lay].append(run_worker(threads, args.meta_batch, args.steps, passive))
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
    alone = {(t, p): statistics.median(results[(t, p, "none")]) for t, p, c in layouts if c == "none"}
    print(f"second-order MAML meta-step, Conv4, 5-way 1-shot, meta-batch {args.meta_batch}, "
          f"median of {args.repeats} x {args.steps} steps; {os.cpu_count()} cores\n")
    print("| competition | threads | OMP_WAIT_POLICY | s/step | slowdown vs alone |")
    print("|---|---:|---|---:|---:|")
    for lay in layouts:
        threads, passive, comp = lay
        sec = statistics.median(results[lay])
        print(f"| {comp} | {threads} | {'PASSIVE' if passive else 'default'} | {sec:.3f} | "
              f"{sec / alone[(threads, passive)]:.2f}x |")


if __name__ == "__main__":
    main()
