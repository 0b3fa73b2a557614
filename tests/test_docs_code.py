"""Every code block of the README and the documentation runs, in short mode.

The blocks of one page run in order in one fresh folder (``examples/`` and ``benchmarks/`` linked in),
with ``METALEARN_SHORT=1``, which caps steps, tasks, episodes, rounds and trials
(:mod:`metalearn.config.short_mode`): a 30-minute training runs its first steps through the same
code. Before a block runs, what the test environment already did is left out of it: installation
(``pip install ... &&``), pointing at the data (``export METALEARN_DATA_DIR=...``) and the test
suite itself (``python3 -m pytest``). A block that cannot run here (a placeholder such as ``RUN``, a
GPU, several machines, a benchmark that takes its own time) is preceded by
``<!-- ci: skip: the reason -->``; its page must hold a block that runs (a results or speed page,
whose commands are the record of a measurement, may skip them all).
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from shared_data import HAS_OMNIGLOT, MISSING, REPO, SHARED_DATA

FENCE = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r"<!-- ci: skip: (.+?) -->\s*$")
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[tuple[str, str, str | None]]:
    """``(language, code, skip reason or None)`` of each fenced bash or python block of ``page``."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        out.append((m.group(1), m.group(2), skip.group(1) if skip else None))
    return out


def runnable(code: str) -> str:
    """The block without what the test environment has already done."""
    lines = []
    for line in code.splitlines():
        line = re.sub(r"^pip install [^&]*&&\s*", "", line)
        if re.match(r"\s*(pip install|export METALEARN_DATA_DIR=|python3 -m pytest)", line):
            continue
        lines.append(line)
    return "\n".join(lines)


CODE_PAGES = [p for p in PAGES if blocks(p)]


def test_every_install_line_keeps_the_torch_pin():
    bad = [f"{p.relative_to(REPO)}: {line.strip()}" for p in CODE_PAGES for _, code, _ in blocks(p)
           for line in code.splitlines() if re.match(r"\s*pip install .*-e", line) and "torch==2.13.0" not in line]
    assert not bad, "install lines without the torch pin: " + "; ".join(bad)


@pytest.mark.parametrize("page", CODE_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_code_blocks_of_a_page_run(page, tmp_path):
    found = blocks(page)
    measurement = page.parent.name in ("results", "speed")   # the commands are the record of a measurement
    assert measurement or any(skip is None for _, _, skip in found), \
        f"{page.name}: every block is skipped; add a short twin that runs"
    if all(skip is not None for _, _, skip in found):
        pytest.skip("the page records a measurement; its commands take their own time")
    text = "\n".join(code for _, code, skip in found if skip is None)
    if re.search(r"omniglot|mnist", text) and not HAS_OMNIGLOT:
        pytest.skip(MISSING)
    for name in ("examples", "benchmarks"):
        (tmp_path / name).symlink_to(REPO / name)
    env = {**os.environ, "METALEARN_SHORT": "1", "MPLBACKEND": "Agg", "WANDB_MODE": "offline",
           "PYTHONWARNINGS": "ignore"}
    env["METALEARN_DATA_DIR"] = str(SHARED_DATA)
    for i, (language, code, skip) in enumerate(found):
        if skip is not None:
            continue
        script = runnable(code)
        argv = ["bash", "-euo", "pipefail", "-c", script] if language == "bash" else [sys.executable, "-c", script]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (f"{page.relative_to(REPO)}, block {i + 1} ({language}) failed:\n{script}\n"
                                      f"--- stderr ---\n{done.stderr[-3000:]}\n--- stdout ---\n{done.stdout[-1500:]}")
