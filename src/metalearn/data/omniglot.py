"""Omniglot: Lake, Salakhutdinov & Tenenbaum (2015), "Human-level concept learning through
probabilistic program induction", Science 350(6266). 1,623 handwritten characters from 50
alphabets, 20 drawings each.

Reads the two canonical archives (``images_background.zip``, ``images_evaluation.zip``), zipped
or extracted, from a local folder, or downloads them from brendenlake/omniglot with their
published md5. A local copy is verified by structure (30 + 20 alphabets, 964 + 659 characters,
20 drawings each), not by checksum, since repacked archives hold the same PNGs under another md5.
The decoded images are cached as one uint8 tensor per image size, so later runs load in a second.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from .._util.files import atomic_write_bytes
from ..errors import MetalearnError
from .download import DATA_DIR_ENV, default_data_dir, download
from .images import ImageDataset, decode_image

BASE_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
CACHE_VERSION = 1


@dataclass(frozen=True)
class OmniglotPart:
    """One archive of Omniglot (background or evaluation): its name, checksum and number of alphabets."""
    name: str
    md5: str
    alphabets: int
    characters: int


PARTS = (OmniglotPart("images_background", "68d2efa1b9178cc56df9314c21c6e718", 30, 964),
         OmniglotPart("images_evaluation", "6b91aef0f799c5bb55b94e3f2daec811", 20, 659))
DRAWINGS = 20


def cache_dir() -> Path:
    """Where downloads are kept: ``$METALEARN_CACHE_DIR``, else ``~/.cache/metalearn``."""
    env = os.environ.get("METALEARN_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "metalearn"


def _find(data_dir: Path, part: OmniglotPart) -> Path | None:
    for base in (data_dir, data_dir / "omniglot", data_dir / "omniglot-py"):
        for cand in (base / f"{part.name}.zip", base / part.name):
            if cand.exists():
                return cand
    return None


def _list_members(source: Path, part: OmniglotPart) -> dict[tuple[str, str], list[str]]:
    """``(alphabet, character) -> sorted PNG member names`` of a zip or an extracted folder."""
    chars: dict[tuple[str, str], list[str]] = defaultdict(list)
    if source.suffix == ".zip":
        try:
            with zipfile.ZipFile(source) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise MetalearnError(f"{source} is not a readable zip archive ({exc}); it may be truncated: "
                                 f"delete it to download again, or replace it with a good copy") from None
    else:
        names = [str(p.relative_to(source.parent)) for p in source.rglob("*.png")]
    for n in names:
        parts = n.replace("\\", "/").split("/")
        if len(parts) == 4 and parts[0] == part.name and parts[3].endswith(".png"):
            chars[(parts[1], parts[2])].append(n)
    return {k: sorted(v) for k, v in sorted(chars.items())}


def verify_structure(source: Path, part: OmniglotPart) -> dict[tuple[str, str], list[str]]:
    """Check alphabet, character and drawing counts; a clear error names what is missing."""
    chars = _list_members(source, part)
    alphabets = sorted({a for a, _ in chars})
    problems = []
    if len(alphabets) != part.alphabets:
        problems.append(f"{len(alphabets)} alphabets instead of {part.alphabets}")
    if len(chars) != part.characters:
        problems.append(f"{len(chars)} characters instead of {part.characters}")
    short = [f"{a}/{c} ({len(v)})" for (a, c), v in chars.items() if len(v) != DRAWINGS]
    if short:
        problems.append(f"characters without {DRAWINGS} drawings: {', '.join(short[:5])}"
                        + (" ..." if len(short) > 5 else ""))
    if problems:
        raise MetalearnError(f"Omniglot copy {source} is incomplete: {'; '.join(problems)}. "
                             f"Replace it with the complete {part.name}.zip (or delete it to download again)")
    return chars


def locate(data_dir: Path | str | None = None, download_missing: bool = True) -> list[Path]:
    """Paths of both parts (zip or folder) under ``data_dir``, downloading what is missing."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    found = []
    for part in PARTS:
        path = _find(root, part)
        if path is None:
            if not download_missing:
                raise MetalearnError(f"Omniglot {part.name}.zip not found under {root}; pass --data-dir "
                                     f"(or set {DATA_DIR_ENV}) to a folder holding it")
            path = download(BASE_URL + f"{part.name}.zip", root / "omniglot" / f"{part.name}.zip", part.md5)
        found.append(path)
    return found


def _decode_part(source: Path, part: OmniglotPart, size: int) -> tuple[list[torch.Tensor], list[str]]:
    chars = verify_structure(source, part)
    per_class, names = [], []
    zf = zipfile.ZipFile(source) if source.suffix == ".zip" else None
    try:
        for (alphabet, char), members in chars.items():
            imgs = []
            for m in members:
                try:
                    data = zf.read(m) if zf else (source.parent / m).read_bytes()
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise MetalearnError(f"cannot read {m} from {source} ({exc}); the archive is damaged, "
                                         f"replace it with a good copy") from None
                imgs.append(decode_image(data, size, invert=True, source=f"{source}:{m}"))
            per_class.append(torch.stack(imgs))
            names.append(f"{alphabet}/{char}")
    finally:
        if zf:
            zf.close()
    return per_class, names


@lru_cache(maxsize=4)
def _load_cached(sources: tuple[str, ...], size: int) -> tuple[ImageDataset, int]:
    key = "_".join(f"{Path(s).name}-{os.stat(s).st_size}" for s in sources)
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    cache = cache_dir() / f"omniglot-{size}px-v{CACHE_VERSION}-{digest}.pt"
    if cache.is_file():
        try:
            d = torch.load(cache, weights_only=True)
            return ImageDataset(d["images"], d["offsets"], d["counts"], d["names"]), int(d["background"])
        except Exception:
            cache.unlink(missing_ok=True)
    per_class, names, background = [], [], 0
    for src, part in zip(sources, PARTS):
        pc, nm = _decode_part(Path(src), part, size)
        per_class += pc
        names += nm
        if part.name == "images_background":
            background = len(nm)
    ds = ImageDataset.from_class_lists(per_class, names)
    buf = io.BytesIO()
    torch.save({"images": ds.images, "offsets": ds.offsets, "counts": ds.counts, "names": ds.class_names,
                "background": background}, buf)
    with contextlib.suppress(OSError):  # a read-only cache folder only costs the decoding next time
        atomic_write_bytes(cache, buf.getvalue())
    return ds, background


def load_omniglot(data_dir: Path | str | None = None, image_size: int = 28,
                  download_missing: bool = True) -> tuple[ImageDataset, int]:
    """All 1,623 characters (background first, then evaluation), strokes bright on black, as a
    uint8 ``ImageDataset`` of ``image_size`` pixels; also the number of background characters."""
    if image_size <= 0:
        raise MetalearnError(f"image size must be positive, got {image_size}")
    sources = locate(data_dir, download_missing)
    return _load_cached(tuple(str(p.resolve()) for p in sources), image_size)
