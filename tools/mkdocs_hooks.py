"""mkdocs hooks: the pages that must not drift from the code are generated at build time.

A page marks a generated part with ``<!-- generated: NAME -->``:

* ``cli``: ``metalearn --help`` and every subcommand's ``--help``, from the argparse parsers;
* ``layers``: the import layers that ``tests/test_layers.py`` checks (``metalearn._util.layers``),
  with each package's one-line summary;
* ``presets``: every preset with its family and algorithm;
* ``changelog``: ``CHANGELOG.md``;
* ``api``: every name of ``metalearn.__all__``, grouped by the layer it comes from, for mkdocstrings.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"<!-- generated: ([a-z]+) -->")


def _help(parser: argparse.ArgumentParser) -> str:
    os.environ["COLUMNS"] = "100"   # the same wrapping on every machine
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        parser.print_help()
    return out.getvalue().rstrip()


def _cli() -> str:
    from metalearn.cli.main import build_parser
    parser = build_parser()
    parts = ["## metalearn", "", "```text", _help(parser), "```", ""]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        parts += [f"## metalearn {name}", "", "```text", _help(p), "```", ""]
    return "\n".join(parts)


def _summary(module: str) -> str:
    try:
        doc = importlib.import_module(f"metalearn.{module}").__doc__ or ""
    except ImportError:   # an optional dependency this machine lacks
        doc = ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ")
    return first.replace("|", "\\|")


def _layers() -> str:
    from metalearn._util.layers import LAYERS
    rows = ["| layer (lowest first) | packages and modules | what they hold |", "|---:|---|---|"]
    for i, names in enumerate(LAYERS):
        shown = [n for n in names if not n.startswith("__")]
        what = "; ".join(s for s in (_summary(n) for n in shown) if s)
        rows.append(f"| {i} | {', '.join(f'`{n}`' for n in shown) or '`metalearn`'} | {what} |")
    return "\n".join(rows)


def _presets() -> str:
    from metalearn.config import load_preset
    from metalearn.config.presets import list_presets
    rows = ["| preset | task family | algorithm |", "|---|---|---|"]
    for name in list_presets():
        cfg = load_preset(name)
        rows.append(f"| `{name}` | {cfg.task.family} | {cfg.algo.name} |")
    return "\n".join(rows)


def _changelog() -> str:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    return re.sub(r"^# .*\n", "", text, count=1)


API_GROUPS = [
    ("Algorithms", ("algorithms",)),
    ("Task families", ("tasks",)),
    ("Training, runs and configs", ("training", "runs", "config")),
    ("Evaluation and reports", ("evaluation", "report")),
    ("The functional core and models", ("functional", "models")),
    ("Protocols, batches, tables and errors", ("protocols", "batch", "data", "errors")),
]


def _api() -> str:
    import metalearn
    groups: dict[str, list[str]] = {title: [] for title, _ in API_GROUPS}
    for name in sorted(metalearn.__all__, key=str.lower):
        obj = getattr(metalearn, name)
        module = getattr(obj, "__module__", None) or obj.__name__
        top = module.split(".")[1]
        title = next((t for t, tops in API_GROUPS if top in tops), None)
        if title is None:
            raise ValueError(f"metalearn.{name} comes from metalearn.{top}, which no API group holds")
        groups[title].append(name)
    parts = []
    for title, names in groups.items():
        parts += [f"## {title}", ""]
        for name in names:
            parts += [f"::: metalearn.{name}", "    options:", "      heading_level: 3", ""]
    return "\n".join(parts)


GENERATORS = {"cli": _cli, "layers": _layers, "presets": _presets, "changelog": _changelog, "api": _api}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_path}: unknown generated part {name!r}")
        return GENERATORS[name]()
    return MARK.sub(fill, markdown)
