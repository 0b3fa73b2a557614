"""``metalearn list``: presets, algorithms and task families."""
from __future__ import annotations

import argparse

from ..algorithms import list_algorithms
from ..config import list_presets
from ..tasks import list_task_families


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("list", help="list presets, algorithms and task families")


def run(args: argparse.Namespace) -> int:
    print("presets:       " + ", ".join(list_presets()))
    print("algorithms:    " + ", ".join(list_algorithms()))
    print("task families: " + ", ".join(list_task_families()))
    return 0
