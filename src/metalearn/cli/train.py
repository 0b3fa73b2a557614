"""``metalearn train PRESET [--out DIR] [--steps N] [--set key=value ...]`` and ``--resume RUN``."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .._util.threads import busy_cores, choose_threads
from ..config import apply_overrides, list_presets, load_preset, validate
from ..errors import ConfigError, RunError
from ..runs import Run
from ..training.build import build_trainer
from ..training.distributed import from_environment
from ..training.trainer import RESUMABLE_KEYS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="meta-train from a preset (or resume a run)",
                       description=f"Meta-train. Presets: {', '.join(list_presets())}.")
    p.add_argument("preset", nargs="?", help="preset name (e.g. sinusoid) or a YAML config file")
    p.add_argument("--config", metavar="FILE", help="a YAML config file (a saved run's config.yaml, a tune study's "
                                                    "best.yaml); the same as giving FILE as the preset")
    p.add_argument("--out", help="run folder, new or empty (default: runs/PRESET)")
    p.add_argument("--steps", type=int, help="total meta-steps (same as --set train.steps=N)")
    p.add_argument("--algo", help="algorithm (same as --set algo.name=NAME)")
    p.add_argument("--seed", type=int, help="seed (same as --set train.seed=N)")
    p.add_argument("--data-dir", help="local copy of the dataset (same as --set task.data_dir=DIR; "
                                      "default $METALEARN_DATA_DIR, else download)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set task.shots=5 (repeatable)")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue a stopped or killed run")
    p.add_argument("--procs", type=int, metavar="N",
                   help="split every meta-batch over N local processes (torchrun --standalone), each with "
                        "train.threads / N threads; on a CPU, 2 processes x 1 thread beat 1 x 2 (README)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.overrides)
    if args.steps is not None:
        extra.append(f"train.steps={args.steps}")
    if args.algo is not None:
        extra.append(f"algo.name={args.algo}")
    if args.seed is not None:
        extra.append(f"train.seed={args.seed}")
    if getattr(args, "data_dir", None) is not None:
        extra.append(f"task.data_dir={str(Path(args.data_dir).resolve())!r}")
    return extra


def _launch(args: argparse.Namespace, threads: int) -> int:
    """Re-run this command under ``torchrun --standalone`` with ``args.procs`` processes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.procs}",
           "-m", "metalearn", "train"]
    if args.resume is not None:
        cmd += ["--resume", str(args.resume)]
    else:
        cmd += [args.preset] + (["--out", str(args.out)] if args.out else [])
    for flag, value in (("--steps", args.steps), ("--algo", args.algo), ("--seed", args.seed),
                        ("--data-dir", args.data_dir)):
        if value is not None:
            cmd += [flag, str(value)]
    for o in [*args.overrides, f"train.threads={max(1, threads // args.procs)}"]:
        cmd += ["--set", o]
    if args.quiet:
        cmd.append("--quiet")
    return subprocess.call(cmd)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()   # train.time_limit bounds the command from here, set-up included
    if args.procs is not None and args.procs < 1:
        raise ConfigError(f"--procs must be a positive integer, got {args.procs}")
    if args.config is not None:
        if args.preset:
            raise ConfigError(f"give a preset ({args.preset}) or --config {args.config}, not both")
        if not Path(args.config).is_file():
            raise ConfigError(f"--config {args.config}: no such file; give a YAML config file, such as a tune "
                              f"study's best.yaml")
        args.preset = args.config
    launch = args.procs is not None and args.procs > 1 and "WORLD_SIZE" not in os.environ
    if args.resume is not None:
        run_dir = Run.open(args.resume)
        allowed = tuple(f"{key}=" for key in RESUMABLE_KEYS)
        if args.preset or args.algo or args.seed is not None or args.data_dir or any(
                not o.startswith(allowed) for o in args.overrides):
            raise ConfigError("--resume continues a run with its own config; only --steps (or "
                              "--set train.steps=N / train.time_limit=M / train.threads=T / task.vector=V / "
                              "task.workers=W) may change")
        run_dir.lock().check_free()
        cfg = run_dir.load_config()
        if not run_dir.last_checkpoint.is_file():
            if run_dir.best_checkpoint.is_file():  # last.pt deleted by hand: keep the best model
                raise RunError(f"{run_dir.path} has no {run_dir.last_checkpoint.name} to resume from (only its best "
                               f"checkpoint, which evaluate and adapt still use); to train on, start a new run "
                               f"with another --out")
            raise RunError(f"{run_dir.path} has no checkpoint to resume from (the run stopped before its "
                           f"first one); delete it (rm -r {run_dir.path}) and train again")
        cfg = validate(apply_overrides(cfg, _overrides(args)))
    else:
        if not args.preset:
            raise ConfigError(f"name a preset ({', '.join(list_presets())}) or use --resume RUN")
        if args.out is not None and not args.out.strip():
            raise ConfigError("--out is empty; name a folder for the run, e.g. --out runs/mine")
        cfg = validate(apply_overrides(load_preset(args.preset), _overrides(args)))
        run_dir = Run(args.out if args.out is not None else Path("runs") / Path(args.preset).stem)
        run_dir.check_new()  # the trainer checks again under the run's lock
    if launch:
        return _launch(args, cfg.train.threads)
    if cfg.train.threads > 1 and cfg.train.device == "cpu" and "WORLD_SIZE" not in os.environ and \
            os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        # a preset's (or the run's) thread count, lowered to the cores free now; the user's kept
        explicit = any(o.startswith("train.threads=") for o in args.overrides)
        cfg.train.threads, note = choose_threads(cfg.train.threads, explicit, busy_cores(0.2))
        thread_note = note if note and not (args.quiet and explicit) else None
    else:
        thread_note = None
    torch.set_num_threads(cfg.train.threads)
    ctx = from_environment(cfg.train.device)
    ctx.barrier()  # every rank has checked the run folder before rank 0 writes to it
    trainer = build_trainer(cfg, run_dir.path, progress=not args.quiet, dist=ctx, started=started)
    if thread_note:   # said once the run is built (a bad config or data gets its one-line error alone)
        print(thread_note, file=sys.stderr)
    try:  # the trainer writes config.yaml once the run's lock is held (and a resumed checkpoint loaded)
        result = trainer.run(resume=args.resume is not None)
    finally:
        ctx.close(teardown=False)
    code = _report(result, run_dir, cfg, trainer) if ctx.is_main else (130 if result.interrupted else 0)
    if ctx.active:
        # every rank has passed the final barrier and every file is written and closed: leave now,
        # without the process group's C++ teardown, which at exit can race the other ranks' and
        # abort a finished process ("terminate called without an active exception")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _report(result: Any, run_dir: Run, cfg: Any, trainer: Any) -> int:
    """The closing lines of ``metalearn train`` (main process only) and its exit code."""
    if result.interrupted:
        print(f"interrupted at step {result.step}; checkpoint saved. Continue with: "
              f"metalearn train --resume {run_dir.path}")
        return 130
    if result.time_limited:
        print(f"stopped at the time limit ({cfg.train.time_limit:g} min) after {result.step} meta-steps; "
              f"continue with: metalearn train --resume {run_dir.path} --set train.time_limit=null")
    sel = trainer.selected()
    print(f"trained {result.step} meta-steps in {result.seconds:.0f} s; best validation {sel['name']} "
          f"{result.best_val * sel['scale']:.4g} at step {result.best_step}; run folder {run_dir.path}\n"
          f"next: metalearn evaluate {run_dir.path}")
    return 0
