"""``metalearn compare RUN1 RUN2 ... [--episodes 600] [--scratch] [--out DIR]``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import check_device
from ..config.short_mode import TASKS, capped
from ..errors import ConfigError
from ..evaluation.compare import compare_runs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="evaluate several runs on the same test episodes, side by side")
    p.add_argument("runs", nargs="+", type=Path, help="run folders (same task setting; image sizes may differ)")
    p.add_argument("--episodes", type=int, default=600, help="test episodes (default 600)")
    p.add_argument("--scratch", action="store_true", help="add the from-scratch baseline")
    p.add_argument("--out", type=Path, default=Path("compare"), help="folder for compare.md and compare.png")
    p.add_argument("--device", default="cpu", help="where to adapt and score: cpu (default) or cuda[:N]")


def run(args: argparse.Namespace) -> int:
    if args.episodes <= 0:
        raise ConfigError(f"--episodes must be positive, got {args.episodes}")
    check_device(args.device)
    args.episodes = capped(args.episodes, TASKS)   # METALEARN_SHORT=1
    table, written = compare_runs(args.runs, args.episodes, args.scratch, out=args.out, device=args.device)
    print(table)
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0
