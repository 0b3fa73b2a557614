"""``metalearn evaluate RUN [--shots K] [--tasks N] [--steps 1,2,5,10]``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .._util.threads import busy_cores, choose_threads
from ..config import EPISODES, check_device
from ..config.short_mode import TASKS, capped
from ..errors import ConfigError
from ..evaluation.registry import evaluate_run
from ..runs import Run


def _steps(text: str) -> list[int]:
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated step counts like 1,2,5,10, got {text!r}") from None
    if not steps or any(s < 0 for s in steps):
        raise argparse.ArgumentTypeError(f"step counts must be >= 0, got {text!r}")
    return steps


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a run on held-out tasks before and after adaptation")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--shots", type=int, help="K support (and query) points per task (default: the run's)")
    p.add_argument("--tasks", "--episodes", dest="tasks", type=int,
                   help="number of held-out tasks or episodes (default: the config's eval.tasks)")
    p.add_argument("--dataset", help="test on another image task family, e.g. mnist (cross-domain)")
    p.add_argument("--queries", type=int, help="query examples per class at test (default: eval.queries)")
    p.add_argument("--data-dir", help="local copy of the test data (default: the run's or $METALEARN_DATA_DIR)")
    p.add_argument("--steps", type=_steps, help="inner steps to report, e.g. 1,2,5,10")
    p.add_argument("--checkpoint", default="best", help="best (default), last, or a kept step-N")
    p.add_argument("--no-baseline", action="store_true", help="skip the pretrained baseline")
    p.add_argument("--device", default="cpu", help="where to adapt: cpu (default) or cuda[:N]")
    p.add_argument("--episode-kind", choices=EPISODES,
                   help="how test episodes draw their classes (default: the run's task.episodes): random, or "
                        "within_alphabet (Omniglot: all from one alphabet, a proxy for Lake et al.'s benchmark)")
    p.add_argument("--within-alphabet", dest="episode_kind", action="store_const", const="within_alphabet",
                   help="same as --episode-kind within_alphabet")
    p.add_argument("--threads", type=int, help="CPU threads (default: the run's train.threads, fewer when other "
                                              "processes keep cores busy)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.shots is not None and args.shots <= 0:
        raise ConfigError(f"--shots must be a positive integer, got {args.shots}")
    if args.tasks is not None and args.tasks <= 0:
        raise ConfigError(f"--tasks must be a positive integer, got {args.tasks}")
    if args.queries is not None and args.queries <= 0:
        raise ConfigError(f"--queries must be a positive integer, got {args.queries}")
    check_device(args.device)
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be a positive integer, got {args.threads}")
    if args.tasks is not None:
        args.tasks = capped(args.tasks, TASKS)   # METALEARN_SHORT=1
    run_dir = Run.open(args.run)
    wanted = args.threads if args.threads is not None else run_dir.load_config().train.threads
    threads, note = choose_threads(wanted, args.threads is not None,
                                   busy_cores(0.2) if wanted > 1 and args.device == "cpu" else None,
                                   keep="--threads {n}")
    torch.set_num_threads(threads)
    result = evaluate_run(args.run, shots=args.shots, tasks=args.tasks, steps=args.steps,
                          baseline=not args.no_baseline, progress=not args.quiet, dataset=args.dataset,
                          queries=args.queries, data_dir=args.data_dir, checkpoint=args.checkpoint,
                          device=args.device, episodes=args.episode_kind)
    if note:   # said with the result, so that an error of the evaluation stays one line
        print(note, file=sys.stderr)
    print(result.table())
    print(f"\nsaved {result.path} (and .md)")
    return 0
