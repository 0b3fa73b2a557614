"""Flower's and Ray's own log lines, and the warnings they raise, go to ``RUN/flower.log`` while a
federated run simulates; the terminal keeps metalearn's round lines alone.

Flower logs about ten lines per round (with colour codes even when piped) and raises deprecation
warnings that ask the caller to change code it does not own; they say nothing a user of
``metalearn federate`` can act on, but they are kept, in the run folder, for debugging.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

LOGGERS = ("flwr", "ray")


@contextlib.contextmanager
def to_log_file(path: Path) -> Iterator[Path]:
    """Within the block, the ``flwr`` and ``ray`` loggers write to ``path`` (appended) instead of the
    terminal, and warnings raised by Flower, Ray or gRPC are written there too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stream: TextIO = open(path, "a", encoding="utf-8")   # noqa: SIM115 (closed below)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    saved: dict[str, tuple[list[logging.Handler], bool]] = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.propagate)
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.addHandler(handler)
        logger.propagate = False
    shown = warnings.showwarning

    def showwarning(message: Any, category: type[Warning], filename: str, lineno: int,
                    file: TextIO | None = None, line: str | None = None) -> None:
        if any(part in filename for part in ("flwr", "ray", "grpc", "google")):
            stream.write(warnings.formatwarning(message, category, filename, lineno, line))
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
    try:
        yield path
    finally:
        warnings.showwarning = shown
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.removeHandler(handler)
            for h in handlers:
                logger.addHandler(h)
            logger.propagate = propagate
        stream.close()
