"""``metalearn report RUN``: PNG plots and a Markdown summary in ``RUN/report``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..report.figures import make_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the run's plots (PNG) and summary")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    for path in make_report(args.run, progress=not args.quiet):
        print(f"wrote {path}")
    return 0
