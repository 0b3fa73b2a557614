"""``metalearn tune PRESET --out DIR --trials N [--space KEY=DIST ...] [--set ...]``."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..config import apply_overrides, load_preset, validate
from ..config.short_mode import TRIALS, capped
from ..tune.study import default_space, tune


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="search a preset's hyper-parameters with Optuna (pruning, resumable studies)")
    p.add_argument("preset", help="preset name or YAML config file")
    p.add_argument("--out", type=Path, required=True, help="study folder: trials/, study.db, best.yaml, report")
    p.add_argument("--trials", type=int, required=True, help="finished trials (complete or pruned) to reach")
    p.add_argument("--time-limit", type=float, metavar="MIN", help="stop starting trials after MIN minutes")
    p.add_argument("--space", action="append", default=[], metavar="KEY=DIST",
                   help="a search dimension, e.g. algo.inner_lr=log:0.01:1, algo.inner_steps=int:1:10, "
                        "train.meta_batch=choice:8,16,32 (repeatable; default: the preset's space)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fixed config values for every trial, e.g. --set train.steps=2000")
    p.add_argument("--storage", help="sqlite (default: DIR/study.db), journal (DIR/journal.log, several "
                                     "processes on one machine) or a database URL (several machines)")
    p.add_argument("--sampler", default="tpe", help="tpe (default) or random")
    p.add_argument("--pruner", default="median", help="median (default), hyperband or none")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    p.add_argument("--show-space", action="store_true", help="print the default search space and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    base = validate(apply_overrides(load_preset(args.preset), args.overrides))
    if args.show_space:
        print("\n".join(default_space(base)))
        return 0
    torch.set_num_threads(base.train.threads)
    trials = capped(args.trials, TRIALS)   # METALEARN_SHORT=1
    res = tune(args.preset, base, args.out, trials, args.space, args.storage, args.sampler, args.pruner,
               args.seed, args.time_limit, progress=not args.quiet)
    print(f"{res.trials} trials ({res.pruned} pruned) in {res.seconds / 60:.1f} trial-minutes; best trial "
          f"{res.best_trial}: validation value {res.best_value:.6g} with "
          + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in res.best_params.items())
          + f"\nwrote {res.best_config} (metalearn train --config {res.best_config}) and {res.table}")
    return 0
