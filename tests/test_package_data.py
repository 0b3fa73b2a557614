"""The built wheel carries the package data the code reads: the presets (under ``config/presets``) and
the bundled glucose readings with their checksum. Built from this checkout, unpacked into a folder
that comes first on the path, and read by a fresh interpreter, as an installed copy would be."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from shared_data import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source")   # built from a copy: nothing is written into the checkout
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(source)], capture_output=True, text=True,
                           env={**os.environ, "PIP_NO_INDEX": "1"})
    if build.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {build.stderr.strip().splitlines()[-1:]}")
    return next(out.glob("metalearn_torch-*.whl"))


def test_the_wheel_holds_the_presets_and_the_glucose_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = {n for n in names if n.startswith("metalearn/config/presets/") and n.endswith(".yaml")}
    shipped = {p.name for p in (REPO / "src/metalearn/config/presets").glob("*.yaml")}
    assert {Path(n).name for n in presets} == shipped
    assert {"metalearn/data/glucose_uvapadova.csv.gz", "metalearn/data/glucose_uvapadova.sha256"} <= names


def test_an_installed_build_loads_a_preset_and_the_glucose_csv(wheel: Path, tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import metalearn, sys; from pathlib import Path; "
            "assert Path(metalearn.__file__).is_relative_to(sys.argv[1]), metalearn.__file__; "
            "from metalearn.config import list_presets, load_preset; "
            "cfg = load_preset('sinusoid'); assert cfg.algo.name == 'maml' and 'table' in list_presets(); "
            "from metalearn.data.glucose import load_glucose_readings; "
            "print(len(load_glucose_readings()))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0
