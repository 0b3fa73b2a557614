import os
from pathlib import Path

import pytest
import torch
from shared_data import HAS_OMNIGLOT, MISSING, SHARED_DATA

# Point every dataset at the local copy: nothing downloads in tests.
os.environ["METALEARN_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture
def data_dir() -> Path:
    """The shared local copy of Omniglot and MNIST (tests that need it skip without it)."""
    if not HAS_OMNIGLOT:
        pytest.skip(MISSING)
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def rss_bytes():
    """A function giving the resident memory of this process in bytes."""
    return _rss


def _rss() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _fd_check(loss, params, coords=3, rel=1e-4, abs_tol=1e-7, seed=0):
    """Assert that autograd's gradient of ``loss()`` matches central finite differences on
    ``coords`` random coordinates of each tensor in ``params`` (use float64)."""
    grads = torch.autograd.grad(loss(), list(params))
    gen = torch.Generator().manual_seed(seed)
    eps = 1e-6
    with torch.no_grad():
        for j, (p, g) in enumerate(zip(params, grads)):
            for i in torch.randperm(p.numel(), generator=gen)[:coords].tolist():
                orig = p.view(-1)[i].item()
                p.view(-1)[i] = orig + eps
                with torch.enable_grad():
                    up = loss().item()
                p.view(-1)[i] = orig - eps
                with torch.enable_grad():
                    down = loss().item()
                p.view(-1)[i] = orig
                assert g.view(-1)[i].item() == pytest.approx((up - down) / (2 * eps), rel=rel, abs=abs_tol), (j, i)


@pytest.fixture
def fd_check():
    """``fd_check(loss, params, coords=3, rel=1e-4, abs_tol=1e-7)``: gradient vs finite differences."""
    return _fd_check
