"""Where the tests find the shared local copy of Omniglot and MNIST, and a marker for tests that
need it: they skip (never download) where it is absent. ``conftest.py`` points
``METALEARN_DATA_DIR`` here before any test module is imported."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("METALEARN_DATA_DIR", REPO.parent / "shared" / "data"))
HAS_OMNIGLOT = (SHARED_DATA / "omniglot" / "images_background.zip").is_file()
MISSING = f"no local Omniglot/MNIST copy at {SHARED_DATA}; set METALEARN_DATA_DIR"
needs_omniglot = pytest.mark.skipif(not HAS_OMNIGLOT, reason=MISSING)
