"""Few-shot image task families with disjoint class splits: Omniglot (the MAML paper's and Lake's
protocols), MNIST (a user-chosen class split, or a cross-domain test target) and a user's own
image folders.

Every split is deterministic and documented:

* Omniglot ``maml`` protocol (Finn et al. 2017, following Vinyals et al. 2016): all 1,623
  characters sorted by ``alphabet/character`` and shuffled with a fixed seed (1); the first 1,100
  are for meta-training, each rotated by 0/90/180/270 degrees into 4 classes (4,400 classes), the
  next 100 for validation, the last 423 for test.
* Omniglot ``lake`` protocol (Lake et al. 2015): the 964 background characters to learn from (100
  of them, chosen with the same fixed seed, held out for validation), the 659 characters of the
  20 evaluation alphabets to test on. ``task.rotations`` applies to the training split here too.
* MNIST: ``task.classes`` lists the training digits; validation uses the other digits' images from
  the MNIST training file, test the other digits' images from the test file (classes unseen in
  training, test images unseen anywhere).
* Image folder: ``DATA_DIR/train``, ``DATA_DIR/val`` (optional) and ``DATA_DIR/test`` hold class
  subfolders; without them, the classes of ``DATA_DIR`` are split 70/10/20 with the fixed seed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from ...data.image_folder import load_image_folder
from ...data.images import ImageDataset
from ...data.mnist import load_mnist
from ...data.omniglot import load_omniglot
from ...errors import ConfigError
from .episodes import FewShotTasks

SPLIT_SEED = 1
SPLITS = ("train", "validation", "test")
PROTOCOLS = ("maml", "lake")


def _permutation(n: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()


def omniglot_split(split: str, protocol: str = "maml", image_size: int = 28,
                   data_dir: str | Path | None = None, rotations: bool = True) -> ImageDataset:
    """The classes of one split of Omniglot under ``protocol``."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown Omniglot protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    ds, n_background = load_omniglot(data_dir, image_size)
    if protocol == "maml":
        order = [i for _, i in sorted((name, i) for i, name in enumerate(ds.class_names))]
        perm = [order[j] for j in _permutation(len(order))]
        parts = {"train": perm[:1100], "validation": perm[1100:1200], "test": perm[1200:]}
    else:
        perm = _permutation(n_background)
        parts = {"train": sorted(perm[100:]), "validation": sorted(perm[:100]),
                 "test": list(range(n_background, ds.num_classes))}
    sub = ds.subset(parts[split])
    return sub.with_rotations() if split == "train" and rotations else sub


def mnist_split(split: str, classes: Sequence[int], data_dir: str | Path | None = None) -> ImageDataset:
    if any(c not in range(10) for c in classes) or len(set(classes)) != len(classes):
        raise ConfigError(f"task.classes must be distinct digits 0-9, got {list(classes)}")
    if split == "train":
        return load_mnist(data_dir, "train").subset(list(classes))
    others = [d for d in range(10) if d not in classes]
    if not others:
        raise ConfigError("task.classes lists all ten digits; leave some out for validation and test")
    return load_mnist(data_dir, "train" if split == "validation" else "test").subset(others)


def folder_split(split: str, root: str | Path | None, image_size: int, channels: int) -> ImageDataset:
    if root is None:
        raise ConfigError("the image_folder task family needs task.data_dir (a folder of class subfolders)")
    if channels not in (1, 3):
        raise ConfigError(f"task.channels must be 1 (grey) or 3 (RGB), got {channels}; "
                          f"use --set task.channels=1 or --set task.channels=3")
    root = Path(root)
    named = {"train": root / "train", "validation": root / "val", "test": root / "test"}
    if named["train"].is_dir() and named["test"].is_dir():
        if split == "validation" and not named["validation"].is_dir():
            split_root = named["train"]
        else:
            split_root = named[split]
        return load_image_folder(split_root, image_size, channels)
    ds = load_image_folder(root, image_size, channels)
    perm = _permutation(ds.num_classes)
    n_train, n_val = int(0.7 * len(perm)), max(1, int(0.1 * len(perm)))
    parts = {"train": perm[:n_train], "validation": perm[n_train:n_train + n_val],
             "test": perm[n_train + n_val:]}
    return ds.subset(sorted(parts[split]))


def image_tasks(family: str, split: str, ways: int, shots: int, queries: int, *, image_size: int = 28,
                data_dir: str | Path | None = None, protocol: str = "maml", rotations: bool = True,
                classes: Sequence[int] = (0, 1, 2, 3, 4), channels: int = 1,
                within_alphabet: bool = False, augment: float = 0.0) -> FewShotTasks:
    """Episodes of ``family`` (omniglot, mnist, image_folder) drawn from one ``split``; ``augment``
    distorts the training split's images (:func:`metalearn.tasks.few_shot.episodes.random_affine`)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if family == "omniglot":
        ds = omniglot_split(split, protocol, image_size, data_dir, rotations)
    elif family == "mnist":
        if image_size != 28:
            raise ConfigError("MNIST images are 28x28; use task.image_size=28")
        ds = mnist_split(split, classes, data_dir)
    elif family == "image_folder":
        ds = folder_split(split, data_dir, image_size, channels)
    else:
        raise ConfigError(f"unknown image task family {family!r}; choose omniglot, mnist or image_folder")
    return FewShotTasks(ds, ways, shots, queries, name=f"{family} {split}", within_groups=within_alphabet,
                        augment=augment if split == "train" else 0.0)


# builders from a config's ``task`` section, for the task registry
def omniglot_from_config(t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                         cross_domain: bool = False) -> FewShotTasks:
    return image_tasks("omniglot", split, t.ways, shots, queries, image_size=t.image_size, data_dir=t.data_dir,
                       protocol=t.protocol, rotations=t.rotations, within_alphabet=t.episodes == "within_alphabet",
                       augment=0.0 if cross_domain else t.augment)


def mnist_from_config(t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                      cross_domain: bool = False) -> FewShotTasks:
    """MNIST episodes; ``cross_domain`` (a model trained on another family): all ten test digits."""
    return image_tasks("mnist", split, t.ways, shots, queries, image_size=t.image_size, data_dir=t.data_dir,
                       classes=[] if cross_domain else t.classes, within_alphabet=t.episodes == "within_alphabet",
                       augment=0.0 if cross_domain else t.augment)


def folder_from_config(t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                       cross_domain: bool = False) -> FewShotTasks:
    return image_tasks("image_folder", split, t.ways, shots, queries, image_size=t.image_size,
                       data_dir=t.data_dir, channels=t.channels, within_alphabet=t.episodes == "within_alphabet",
                       augment=t.augment)
