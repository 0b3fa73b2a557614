"""Meta-training speed on the sinusoid family (Finn et al. 2017, section 5.1), side by side.

Rows, each run in this process on the same settings (MLP 1-40-40-1, K=10, meta-batch 25, one
second-order inner step, Adam 1e-3), alternating, median of ``--repeats``:

* ``bare vmap loop``: a hand-written torch.func loop (vmap over grad), no logging, no validation;
* ``bare per-task loop``: the same with a Python loop over tasks and torch.autograd.grad;
* ``metalearn Trainer``: the library's trainer with everything on (progress bar off): JSON-lines
  and TensorBoard logs, validation on 300 fixed tasks and a checkpoint every 1,000 steps.

    python benchmarks/sinusoid_speed.py [--steps 3000] [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

import metalearn as ml


def sample(gen: torch.Generator, tasks: int = 25, k: int = 10):
    amp = torch.rand(tasks, 1, 1, generator=gen) * 4.9 + 0.1
    phase = torch.rand(tasks, 1, 1, generator=gen) * math.pi
    xs = torch.rand(tasks, k, 1, generator=gen) * 10 - 5
    xq = torch.rand(tasks, k, 1, generator=gen) * 10 - 5
    return xs, amp * torch.sin(xs - phase), xq, amp * torch.sin(xq - phase)


def bare(steps: int, batched: bool) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))
    params = dict(model.named_parameters())
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)

    def loss_fn(p, x, y):
        return ((functional_call(model, p, (x,)) - y) ** 2).mean()

    def task_loss(p, xs, ys, xq, yq):
        g = grad(loss_fn)(p, xs, ys)
        return loss_fn({k: p[k] - 0.01 * g[k] for k in p}, xq, yq)

    def loop_loss(xs, ys, xq, yq):
        total = 0.0
        for t in range(xs.shape[0]):
            g = torch.autograd.grad(loss_fn(params, xs[t], ys[t]), list(params.values()), create_graph=True)
            fast = {k: v - 0.01 * gi for (k, v), gi in zip(params.items(), g)}
            total = total + loss_fn(fast, xq[t], yq[t])
        return total / xs.shape[0]

    t0 = time.perf_counter()
    for _ in range(steps):
        batch = sample(gen)
        opt.zero_grad()
        loss = vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(params, *batch).mean() if batched else loop_loss(*batch)
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def library(steps: int) -> float:
    cfg = ml.load_preset("sinusoid")
    from metalearn.training.build import build_algorithm, build_tasks
    tasks = build_tasks(cfg)
    algo = build_algorithm(cfg, tasks)
    with tempfile.TemporaryDirectory() as out:
        res = ml.Trainer(algo, tasks, out, steps=steps, meta_batch=25, lr=1e-3, progress=False).run()
    return steps / res.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = {"bare vmap loop": [], "bare per-task loop": [], "metalearn Trainer": []}
    for _ in range(args.repeats):
        rows["bare vmap loop"].append(bare(args.steps, batched=True))
        rows["bare per-task loop"].append(bare(max(args.steps // 5, 100), batched=False))
        rows["metalearn Trainer"].append(library(args.steps))
    base = statistics.median(rows["bare vmap loop"])
    print(f"sinusoid MAML, second order, meta-batch 25, K=10, {args.threads} thread(s), "
          f"median of {args.repeats}")
    print(f"| {'path':<20} | {'meta-steps/s':>12} | {'vs bare vmap':>12} | {'70,000 steps':>12} |")
    print(f"|{'-' * 22}|{'-' * 14}|{'-' * 14}|{'-' * 14}|")
    for name, vals in rows.items():
        rate = statistics.median(vals)
        print(f"| {name:<20} | {rate:>12.1f} | {rate / base:>11.2f}x | {70000 / rate / 60:>9.1f} min |")


if __name__ == "__main__":
    main()
