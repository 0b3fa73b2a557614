"""On a GPU: the trainer with ``train.cuda_graph=true`` against the eager trainer, same seed.

Trains ``--steps`` meta-steps of the omniglot-5w1s preset both ways from the same initial
weights and episodes and prints the largest weight difference and each way's steps per second.

    python benchmarks/cuda_graph_check.py --data-dir DIR [--steps 40]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from metalearn.training.build import build_trainer
from metalearn.config import apply_overrides, load_preset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()
    weights, rates = {}, {}
    for graph in (False, True):
        cfg = apply_overrides(load_preset("omniglot-5w1s"), [
            "train.device=cuda", f"train.cuda_graph={str(graph).lower()}", f"train.steps={args.steps}",
            f"train.val_every={args.steps}", "train.val_tasks=32", "train.log_every=10",
            f"train.ckpt_every={args.steps}", f"task.data_dir={args.data_dir!r}"])
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as out:
            trainer = build_trainer(cfg, out, progress=False)
            t0 = time.perf_counter()
            trainer.run()
            rates[graph] = args.steps / (time.perf_counter() - t0)
            weights[graph] = {k: v.detach().cpu().clone() for k, v in trainer.algorithm.state_dict().items()}
    diff = max((weights[True][k] - weights[False][k]).abs().max().item() for k in weights[True])
    scale = max(v.abs().max().item() for v in weights[False].values())
    print(f"after {args.steps} meta-steps: max |w_graph - w_eager| = {diff:.2e} (largest weight {scale:.2f}); "
          f"steps/s incl. start-up and one validation: eager {rates[False]:.2f}, graph {rates[True]:.2f}")


if __name__ == "__main__":
    main()
