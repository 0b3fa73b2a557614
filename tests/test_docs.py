"""The documentation: the README stays a storefront whose links resolve, the functional core's
docstring examples run, and the site builds strictly with every public name in its API reference."""
import doctest
import html
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from shared_data import REPO

import metalearn

LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def test_the_readme_is_short_and_its_links_resolve():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    local = [m.group(1) for m in LINK.finditer(text) if not m.group(1).startswith("http")]
    assert local, "the README links to the documentation pages"
    missing = [target for target in local if not (REPO / target).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
    # the set-up commands are there, and one first-run command per task kind
    assert 'pip install torch==2.13.0 -e ".[test]" && python3 -m pytest -q' in text
    for preset in ("sinusoid", "omniglot-5w1s", "l2l-quadratic", "glucose-30min", "rl-nav2d", "fed-remifentanil"):
        assert f" {preset} --out" in text, preset


def test_every_docs_link_in_the_nav_exists():
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), flags=re.M)
    assert len(nav) >= 12
    assert [p for p in nav if not (REPO / "docs" / p).is_file()] == []


@pytest.mark.parametrize("module", ["metalearn.functional.rules", "metalearn.functional.inner_loop"])
def test_the_functional_core_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.skip("the docs extra is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_the_site_builds_strictly_with_every_public_name_documented(site):
    pages = list(site.glob("**/index.html"))
    assert len(pages) >= 12
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    missing = [n for n in metalearn.__all__ if f'id="metalearn.{n}"' not in api]
    assert not missing, f"the API reference lacks {missing}"
    # each documented object shows its docstring's first line
    for name in ("MAML", "meta_train", "SinusoidTasks"):
        first = getattr(metalearn, name).__doc__.strip().splitlines()[0].split("``")[0][:30]
        assert html.escape(first, quote=False) in api, name


def test_the_generated_pages_follow_the_code(site):
    from metalearn._util.layers import LAYERS
    from metalearn.cli.main import COMMANDS
    from metalearn.config import list_presets
    cli = html.unescape((site / "cli" / "index.html").read_text(encoding="utf-8"))
    assert all(f"metalearn {name}" in cli for name in COMMANDS)
    assert "--episode-kind" in cli or "--episodes" in cli
    presets = (site / "presets" / "index.html").read_text(encoding="utf-8")
    assert all(f"<code>{p}</code>" in presets for p in list_presets())
    design = (site / "design" / "index.html").read_text(encoding="utf-8")
    assert all(f"<code>{n}</code>" in design for layer in LAYERS for n in layer if not n.startswith("__"))
    assert "0.1.0" in (site / "changelog" / "index.html").read_text(encoding="utf-8")
