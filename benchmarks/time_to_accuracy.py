"""Wall time to reach a validation accuracy on Omniglot 5-way 1-shot: metalearn against learn2learn.

Both run the MAML preset of the paper (``omniglot-5w1s``: Conv4-64 with batch-statistics
BatchNorm, one second-order inner SGD step with lr 0.4, meta-batch 32, Adam 1e-3) from the same
initial weights on the same training episodes (metalearn's Omniglot loader and sampler, seed 0),
each in its own process with the same thread count. Every ``--val-every`` meta-steps both are
scored, by the same accuracy computation, on the same fixed validation episodes (200 episodes of
the 100 validation characters, adapted with the training inner step). Only meta-training time is
counted (validation is left out of both clocks). A run stops at ``--target`` percent or after
``--max-minutes`` of meta-training.

learn2learn is driven through its documented MAML API (``MAML(model, lr, first_order=False)``,
``clone()``, ``adapt(loss)``); its package ``__init__`` fails beside a CPU torch build, so its
MAML module is imported as in ``maml_peers.py``.

    python benchmarks/time_to_accuracy.py --data-dir ../shared/data [--target 95] [--max-minutes 25]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import metalearn as ml  # noqa: E402
from metalearn.training.build import build_model, build_tasks  # noqa: E402
from metalearn._util.seeding import generator  # noqa: E402


def setup(data_dir: str | None):
    cfg = ml.load_preset("omniglot-5w1s")
    if data_dir:
        cfg.task.data_dir = data_dir
    train = build_tasks(cfg, "train")
    val = build_tasks(cfg, "validation").sample(200, generator("validation", 0))
    torch.manual_seed(0)
    model = build_model(cfg, train)
    return cfg, train, val, model


def metalearn_runner(cfg, model):
    algo = ml.MAML(model, inner_lr=cfg.algo.inner_lr, inner_steps=cfg.algo.inner_steps, mode=cfg.algo.mode,
                   loss="cross_entropy")

    def step(batch):
        algo.meta_loss(batch).backward()

    def validate(batch) -> float:
        acc = algo.adaptation_curve(batch, cfg.algo.inner_steps, metric=ml.algorithms.base.accuracy)[:, -1]
        return 100 * acc.mean().item()
    return algo.parameters(), step, validate


def learn2learn_runner(cfg, model):
    from maml_peers import import_learn2learn_maml
    maml = import_learn2learn_maml().MAML(model, lr=cfg.algo.inner_lr, first_order=cfg.algo.mode == "first_order")

    def adapted(xs, ys):
        learner = maml.clone()
        for _ in range(cfg.algo.inner_steps):
            learner.adapt(F.cross_entropy(learner(xs), ys))
        return learner

    def step(batch):
        n = batch.num_tasks
        for t in range(n):
            learner = adapted(batch.support_x[t], batch.support_y[t])
            (F.cross_entropy(learner(batch.query_x[t]), batch.query_y[t]) / n).backward()

    def validate(batch) -> float:
        correct = 0.0
        for t in range(batch.num_tasks):
            learner = adapted(batch.support_x[t], batch.support_y[t])
            with torch.no_grad():
                correct += (learner(batch.query_x[t]).argmax(-1) == batch.query_y[t]).float().mean().item()
        return 100 * correct / batch.num_tasks
    return maml.parameters(), step, validate


RUNNERS = {"metalearn": metalearn_runner, "learn2learn": learn2learn_runner}


def worker(impl: str, args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    cfg, train, val, model = setup(args.data_dir)
    params, step, validate = RUNNERS[impl](cfg, model)
    opt = torch.optim.Adam(params, lr=cfg.train.lr)
    rng = generator("train", 0)
    curve, seconds, steps = [], 0.0, 0
    while True:
        t0 = time.perf_counter()
        for _ in range(args.val_every):
            batch = train.sample(cfg.train.meta_batch, rng)
            opt.zero_grad(set_to_none=True)
            step(batch)
            opt.step()
        seconds += time.perf_counter() - t0
        steps += args.val_every
        acc = validate(val)
        curve.append((steps, round(seconds, 1), round(acc, 2)))
        print(json.dumps({"progress": curve[-1]}), file=sys.stderr, flush=True)
        if acc >= args.target or seconds >= 60 * args.max_minutes:
            break
    return {"impl": impl, "reached": acc >= args.target, "steps": steps, "seconds": seconds, "curve": curve}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", type=float, default=95.0, help="validation accuracy to reach, percent")
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--max-minutes", type=float, default=25.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir")
    ap.add_argument("--impls", default="metalearn,learn2learn")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    results = []
    for impl in args.impls.split(","):
        cmd = [sys.executable, __file__, "--worker", impl, "--target", str(args.target), "--val-every",
               str(args.val_every), "--max-minutes", str(args.max_minutes), "--threads", str(args.threads)]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if out.returncode != 0 or not out.stdout.strip():
            results.append({"impl": impl, "error": f"exit {out.returncode}"})
            continue
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"Omniglot 5-way 1-shot MAML (preset omniglot-5w1s), time to {args.target:g}% on 200 fixed validation "
          f"episodes, {args.threads} threads, validation every {args.val_every} steps (not timed)")
    print(f"| {'implementation':<14} | {'reached':>7} | {'meta-steps':>10} | {'minutes':>8} | {'s/step':>7} | {'metalearn is':>12} |")
    print(f"|{'-' * 16}|{'-' * 9}|{'-' * 12}|{'-' * 10}|{'-' * 9}|{'-' * 14}|")
    ours = next((r for r in results if r.get("impl") == "metalearn" and r.get("reached")), None)
    for r in results:
        if "error" in r:
            print(f"| {r['impl']:<14} | error: {r['error']} |")
            continue
        ratio = f"{r['seconds'] / ours['seconds']:.2f}x" if ours and r["reached"] else "-"
        print(f"| {r['impl']:<14} | {'yes' if r['reached'] else 'no':>7} | {r['steps']:>10} | "
              f"{r['seconds'] / 60:>8.2f} | {r['seconds'] / r['steps']:>7.3f} | {ratio:>12} |")
    for r in results:
        if "curve" in r:
            print(f"{r['impl']} (step, seconds, val %): {r['curve']}")


if __name__ == "__main__":
    main()
