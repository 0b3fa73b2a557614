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

Short mode runs everything on one thread, so the pages run two at a time (one per core); the pages
that start Flower's simulation engine (Ray) share one lane, so that two Ray clusters never start
side by side.
"""
import os
import re
from concurrent.futures import ThreadPoolExecutor
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


def _run_page(page: Path, folder: Path) -> str | None:
    """Run the page's blocks in order in ``folder``; None when all succeed, else what failed."""
    found = blocks(page)
    folder.mkdir(parents=True)
    for name in ("examples", "benchmarks"):
        (folder / name).symlink_to(REPO / name)
    env = {**os.environ, "METALEARN_SHORT": "1", "MPLBACKEND": "Agg", "WANDB_MODE": "offline",
           "PYTHONWARNINGS": "ignore", "METALEARN_DATA_DIR": str(SHARED_DATA)}
    for i, (language, code, skip) in enumerate(found):
        if skip is not None:
            continue
        script = runnable(code)
        argv = ["bash", "-euo", "pipefail", "-c", script] if language == "bash" else [sys.executable, "-c", script]
        try:
            done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            return f"{page.relative_to(REPO)}, block {i + 1} ({language}) took more than 900 s:\n{script}"
        if done.returncode != 0:
            return (f"{page.relative_to(REPO)}, block {i + 1} ({language}) failed:\n{script}\n"
                    f"--- stderr ---\n{done.stderr[-3000:]}\n--- stdout ---\n{done.stdout[-1500:]}")
    return None


def _to_run(page: Path) -> bool:
    found = blocks(page)
    text = "\n".join(code for _, code, skip in found if skip is None)
    return bool(text) and (HAS_OMNIGLOT or not re.search(r"omniglot|mnist", text))


@pytest.fixture(scope="module")
def page_results(tmp_path_factory) -> dict[Path, str | None]:
    """Every page's outcome, two lanes at a time: the pages that start Ray in one lane, the others
    shared out by their number of lines of code."""
    pages = [p for p in CODE_PAGES if _to_run(p)]
    size = {p: sum(len(runnable(c).splitlines()) for _, c, s in blocks(p) if s is None) for p in pages}
    lanes: list[list[Path]] = [[], []]
    for page in sorted(pages, key=lambda p: -size[p]):
        ray = any("federate" in runnable(c) for _, c, s in blocks(page) if s is None)
        lane = 0 if ray else min((0, 1), key=lambda i: sum(size[p] for p in lanes[i]))
        lanes[lane].append(page)
    root = tmp_path_factory.mktemp("docs-code")

    def run_lane(lane: list[Path]) -> dict[Path, str | None]:
        return {p: _run_page(p, root / str(p.relative_to(REPO)).replace("/", "_")) for p in lane}

    with ThreadPoolExecutor(2) as pool:
        results: dict[Path, str | None] = {}
        for part in pool.map(run_lane, lanes):
            results.update(part)
    return results


@pytest.mark.parametrize("page", CODE_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_code_blocks_of_a_page_run(page, page_results):
    found = blocks(page)
    measurement = page.parent.name in ("results", "speed")   # the commands are the record of a measurement
    assert measurement or any(skip is None for _, _, skip in found), \
        f"{page.name}: every block is skipped; add a short twin that runs"
    if all(skip is not None for _, _, skip in found):
        pytest.skip("the page records a measurement; its commands take their own time")
    if page not in page_results:
        pytest.skip(MISSING)
    failure = page_results[page]
    assert failure is None, failure
