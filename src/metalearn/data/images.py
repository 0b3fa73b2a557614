"""``ImageDataset``: labelled images held in memory as one uint8 tensor, grouped by class.

Episodes are drawn from it by tensor indexing (no per-image loader in the hot path).
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, MetalearnError

if TYPE_CHECKING:
    import PIL.Image


@dataclass(frozen=True)
class ImageDataset:
    """Images sorted by class: class ``c`` owns ``images[offsets[c] : offsets[c] + counts[c]]``.

    ``images`` is uint8 ``[N, channels, H, W]``; ``class_names[c]`` names class ``c``.
    """

    images: Tensor
    offsets: Tensor
    counts: Tensor
    class_names: list[str]
    root: str | None = None   # image folders: class ``c``'s images came from ``root/class_names[c]``

    def class_source(self, c: int) -> str:
        """Where class ``c`` came from: its folder for image folders, else its name."""
        return str(Path(self.root) / self.class_names[c]) if self.root else self.class_names[c]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @classmethod
    def from_class_lists(cls, per_class: Sequence[Tensor], class_names: Sequence[str],
                         root: str | None = None) -> ImageDataset:
        counts = torch.tensor([len(t) for t in per_class], dtype=torch.long)
        offsets = torch.cumsum(counts, 0) - counts
        return cls(torch.cat(list(per_class)), offsets, counts, list(class_names), root)

    def class_images(self, c: int) -> Tensor:
        o, n = int(self.offsets[c]), int(self.counts[c])
        return self.images[o:o + n]

    def subset(self, classes: Sequence[int]) -> ImageDataset:
        """The dataset restricted to ``classes`` (in that order)."""
        return ImageDataset.from_class_lists([self.class_images(c) for c in classes],
                                             [self.class_names[c] for c in classes], self.root)

    def with_rotations(self, quarter_turns: Sequence[int] = (0, 1, 2, 3)) -> ImageDataset:
        """Every class rotated by each multiple of 90 degrees, each rotation a new class
        (the Omniglot augmentation of Santoro et al. 2016 and the MAML paper)."""
        per_class, names = [], []
        for c in range(self.num_classes):
            imgs = self.class_images(c)
            for k in quarter_turns:
                per_class.append(torch.rot90(imgs, k, dims=(-2, -1)).contiguous())
                names.append(self.class_names[c] if k == 0 else f"{self.class_names[c]}@rot{90 * k}")
        return ImageDataset.from_class_lists(per_class, names)


def unreadable_image(source: str | Path, exc: BaseException) -> MetalearnError:
    """The one-line error for an image file Pillow cannot read (empty, truncated, not an image)."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return MetalearnError(f"cannot read image {source}: {reason}; replace or remove it")


def read_image(data: bytes | str | Path, mode: str, source: str = "") -> PIL.Image.Image:
    """The fully decoded image of a file's bytes (or path) in Pillow ``mode`` (L or RGB); a
    ``MetalearnError`` naming ``source`` when the file cannot be read."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            return img.convert(mode)  # decodes every pixel: truncated files fail here
    except Exception as exc:
        raise unreadable_image(source or str(data), exc) from None


def decode_image(data: bytes | str, size: int, channels: int = 1, invert: bool = False,
                 source: str = "") -> Tensor:
    """Decode an image file (any format Pillow reads) to uint8 ``[channels, size, size]``."""
    from PIL import Image
    if channels not in (1, 3):
        raise ConfigError(f"task.channels must be 1 (grey) or 3 (RGB), got {channels}")
    img = read_image(data, "L" if channels == 1 else "RGB", source)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    if invert:
        arr = 255 - arr
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if channels == 1 else t.permute(2, 0, 1).contiguous()
