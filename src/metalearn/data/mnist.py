"""MNIST (LeCun, Cortes & Burges): the four canonical IDX files, read from a local folder or
downloaded with their published md5s. Usable as a few-shot task source with a user-chosen class
split, and as a cross-domain target for models meta-trained on Omniglot.
"""
from __future__ import annotations

import gzip
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import MetalearnError
from .download import DATA_DIR_ENV, default_data_dir, download
from .images import ImageDataset

MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/")
FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file into a numpy array, checking its header against its size."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise MetalearnError(f"cannot read {path}: {exc}; replace it with a good copy") from None
    if len(data) < 4:
        raise MetalearnError(f"{path} is not an IDX file (too short)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise MetalearnError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise MetalearnError(f"{path} is truncated: header says {shape}, found {body.size} bytes of data")
    return body.reshape(shape)


def _locate(data_dir: Path | None, download_missing: bool) -> dict[str, Path]:
    root = data_dir if data_dir is not None else default_data_dir()
    paths = {}
    for name, md5 in FILES.items():
        for base in (root, root / "mnist", root / "MNIST" / "raw"):
            if (base / name).is_file():
                paths[name] = base / name
                break
        else:
            if not download_missing:
                raise MetalearnError(f"MNIST file {name} not found under {root}; pass --data-dir (or set "
                                     f"{DATA_DIR_ENV}) to a folder holding the four IDX files")
            paths[name] = download([m + name for m in MIRRORS], root / "mnist" / name, md5)
    return paths


@lru_cache(maxsize=2)
def _load(root: str | None, split: str, download_missing: bool) -> ImageDataset:
    paths = _locate(Path(root) if root else None, download_missing)
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(paths[f"{prefix}-images-idx3-ubyte.gz"])
    labels = read_idx(paths[f"{prefix}-labels-idx1-ubyte.gz"])
    if len(images) != len(labels):
        raise MetalearnError(f"MNIST {split}: {len(images)} images but {len(labels)} labels")
    imgs = torch.from_numpy(images.copy()).unsqueeze(1)
    lab = torch.from_numpy(labels.astype(np.int64))
    order = torch.argsort(lab, stable=True)
    return ImageDataset.from_class_lists([imgs[order][lab[order] == d] for d in range(10)],
                                         [str(d) for d in range(10)])


def load_mnist(data_dir: Path | str | None = None, split: str = "train",
               download_missing: bool = True) -> ImageDataset:
    """MNIST ``train`` (60,000) or ``test`` (10,000) as an ``ImageDataset`` of 10 digit classes,
    28x28, strokes bright on black."""
    if split not in ("train", "test"):
        raise MetalearnError(f"MNIST split must be 'train' or 'test', got {split!r}")
    return _load(str(data_dir) if data_dir is not None else None, split, download_missing)
