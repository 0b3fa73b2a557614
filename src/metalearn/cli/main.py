"""The ``metalearn`` command: a tiny dispatcher over one module per subcommand."""
from __future__ import annotations

import argparse
import sys
import warnings

from .._version import __version__
from ..errors import MetalearnError
from . import adapt, compare, evaluate, federate, info, listing, report, train, tune

COMMANDS = {"train": train, "evaluate": evaluate, "adapt": adapt, "compare": compare, "report": report, "list": listing,
            "info": info, "tune": tune, "federate": federate}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metalearn", description="Meta-learning: train, adapt, evaluate, report.")
    parser.add_argument("--version", action="version", version=f"metalearn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # warnings about the user's data (filled values, skipped groups) as one line each
    previous = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *rest, **kw: (
        f"metalearn {args.command}: warning: {message}\n" if issubclass(category, UserWarning)
        else f"{category.__name__}: {message}\n")
    try:
        return _run(args)
    finally:
        warnings.formatwarning = previous


def _run(args: argparse.Namespace) -> int:
    try:
        return int(COMMANDS[args.command].run(args) or 0)
    except MetalearnError as exc:
        print(f"metalearn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only file system, a full disk, a path that is a file...
        where = f" {exc.filename}" if exc.filename else ""
        print(f"metalearn {args.command}: error: cannot use{where}: {exc.strerror or exc}; choose a writable "
              f"folder with free space (or fix the path) and run the command again", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
