"""A user's own images: one subfolder per class, any format Pillow reads."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..errors import MetalearnError
from .images import ImageDataset, decode_image, read_image, unreadable_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (by suffix, case-insensitive), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def image_sizes(paths: list[Path]) -> dict[tuple[int, int], list[Path]]:
    """Group image files by their (width, height)."""
    from PIL import Image
    sizes: dict[tuple[int, int], list[Path]] = {}
    for p in paths:
        try:
            with Image.open(p) as im:
                sizes.setdefault(im.size, []).append(p)
        except Exception as exc:
            raise unreadable_image(p, exc) from None
    return sizes


def class_folders(root: Path, what: str = "image folder") -> list[Path]:
    """The class subfolders of ``root``, sorted by name; a clear error when there are none."""
    if not root.is_dir():
        raise MetalearnError(f"{what} {root} does not exist")
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if not classes:
        raise MetalearnError(f"{what} {root} has no class subfolders; put each class's images in its "
                             f"own subfolder, e.g. {root}/a/1.png")
    return classes


def load_image_folder(root: Path | str, image_size: int, channels: int = 1, invert: bool = False,
                      min_per_class: int = 1) -> ImageDataset:
    """Classes from the subfolders of ``root`` (sorted by name), images resized to ``image_size``."""
    root = Path(root)
    classes = class_folders(root)
    per_class, names = [], []
    for c in classes:
        files = list_images(c)
        if len(files) < min_per_class:
            raise MetalearnError(f"class folder {c} has {len(files)} images, needs at least {min_per_class}")
        per_class.append(torch.stack([decode_image(f.read_bytes(), image_size, channels, invert, str(f))
                                      for f in files]))
        names.append(c.name)
    return ImageDataset.from_class_lists(per_class, names, root=str(root))


def _check_same_size(files: list[Path]) -> None:
    sizes = image_sizes(files)
    if len(sizes) > 1:
        common = max(sizes, key=lambda s: len(sizes[s]))
        odd = next(p for s, ps in sizes.items() if s != common for p in ps)
        with_size = next(s for s, ps in sizes.items() if odd in ps)
        raise MetalearnError(f"image sizes differ: {odd} is {with_size[0]}x{with_size[1]} but most images are "
                             f"{common[0]}x{common[1]}; give every support and query image the same size "
                             f"(or pass --resize to resize each one to the model's input)")


def _needs_invert(files: list[Path], mode: str) -> bool:
    if mode in ("yes", "no"):
        return mode == "yes"
    import numpy as np
    means = []
    for p in files[:50]:
        means.append(float(np.asarray(read_image(p, "L", str(p)), dtype=np.float32).mean()))
    return sum(means) / len(means) > 127  # light background: make it dark like the training data


def load_episode_folders(support: Path | str, query: Path | str, image_size: int, channels: int = 1,
                         invert: str = "auto", resize: bool = False
                         ) -> tuple[list[str], Tensor, Tensor, list[Path], Tensor, Tensor | None]:
    """A user's own episode: ``support/<class>/*`` and ``query/*`` (or ``query/<class>/*``, which
    also gives the true labels). Returns class names, support images and labels, query paths,
    query images and query labels (or None). Images are float in [0, 1] at ``image_size``."""
    support, query = Path(support), Path(query)
    if not query.is_dir():
        raise MetalearnError(f"query folder {query} does not exist")
    classes = class_folders(support, "support folder")
    sup_files, sup_labels = [], []
    for i, c in enumerate(classes):
        files = list_images(c)
        if not files:
            raise MetalearnError(f"class folder {c} has no images; every support class needs at least one")
        sup_files += files
        sup_labels += [i] * len(files)
    names = [c.name for c in classes]
    q_sub = sorted(p for p in query.iterdir() if p.is_dir())
    q_files, q_labels = list_images(query), []
    if q_sub:
        unknown = [p.name for p in q_sub if p.name not in names]
        if unknown:
            raise MetalearnError(f"query class folders {', '.join(unknown)} are not support classes "
                                 f"({', '.join(names)})")
        for p in q_sub:
            files = list_images(p)
            q_files += files
            q_labels += [names.index(p.name)] * len(files)
    if not q_files:
        raise MetalearnError(f"query folder {query} has no images")
    if q_labels and len(q_labels) != len(q_files):
        raise MetalearnError(f"{query} mixes loose images and class subfolders; use one or the other")
    if not resize:
        _check_same_size(sup_files + q_files)
    inv = _needs_invert(sup_files, invert)
    load = lambda fs: torch.stack([decode_image(f.read_bytes(), image_size, channels, inv, str(f))  # noqa: E731
                                   for f in fs]).float().div_(255)
    return (names, load(sup_files), torch.tensor(sup_labels), q_files, load(q_files),
            torch.tensor(q_labels) if q_labels else None)
