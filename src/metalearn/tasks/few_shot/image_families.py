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

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ...data.image_folder import load_image_folder
from ...data.images import ImageDataset
from ...data.mnist import load_mnist
from ...data.omniglot import load_omniglot
from ...errors import ConfigError, DataError
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
    """The MNIST images of one split: ``train`` holds the digits ``classes`` (from MNIST's training
    set); ``validation`` and ``test`` hold the other digits, from MNIST's training and test sets."""
    if any(c not in range(10) for c in classes) or len(set(classes)) != len(classes):
        raise ConfigError(f"task.classes must be distinct digits 0-9, got {list(classes)}")
    if split == "train":
        return load_mnist(data_dir, "train").subset(list(classes))
    others = [d for d in range(10) if d not in classes]
    if not others:
        raise ConfigError("task.classes lists all ten digits; leave some out for validation and test")
    return load_mnist(data_dir, "train" if split == "validation" else "test").subset(others)


def folder_split(split: str, root: str | Path | None, image_size: int, channels: int,
                 fitted: dict[str, Any] | None = None) -> tuple[ImageDataset, dict[str, Any]]:
    """The classes of ``split`` of an image folder, and what a run stores of it (``fitted.json``):
    the folder's resolved path, its layout and each split's class names. From a run's ``fitted``,
    the same folder and the same classes are used again, wherever the command runs and whatever
    class folders were added since (a derived 70/10/20 split is never drawn again over a grown
    class list, which would move test classes into meta-training). An absolute ``root`` other
    than the stored one is where the folder moved to: the stored classes are looked up there."""
    if channels not in (1, 3):
        raise ConfigError(f"task.channels must be 1 (grey) or 3 (RGB), got {channels}; "
                          f"use --set task.channels=1 or --set task.channels=3")
    if fitted is not None:
        if root is not None and Path(root).is_absolute() and Path(root).resolve() != Path(str(fitted.get("root"))):
            fitted = {**fitted, "root": str(Path(root).resolve())}   # the folder moved, and the config says where
        return _stored_folder_split(split, fitted, image_size, channels), fitted
    if root is None:
        raise ConfigError("the image_folder task family needs task.data_dir (a folder of class subfolders)")
    root = Path(root).resolve()
    named = {"train": root / "train", "validation": root / "val", "test": root / "test"}
    if named["train"].is_dir() and named["test"].is_dir():
        # no val/ folder: validation episodes come from the training classes
        use_train = split == "validation" and not named["validation"].is_dir()
        split_root = named["train"] if use_train else named[split]
        state: dict[str, Any] = {"family": "image folder", "root": str(root), "layout": "split folders"}
        return load_image_folder(split_root, image_size, channels), state
    ds = load_image_folder(root, image_size, channels)
    perm = _permutation(ds.num_classes)
    n_train, n_val = int(0.7 * len(perm)), max(1, int(0.1 * len(perm)))
    parts = {"train": perm[:n_train], "validation": perm[n_train:n_train + n_val],
             "test": perm[n_train + n_val:]}
    state = {"family": "image folder", "root": str(root), "layout": "derived split",
             "split": {name: [ds.class_names[c] for c in sorted(idx)] for name, idx in parts.items()}}
    return ds.subset(sorted(parts[split])), state


def _stored_folder_split(split: str, fitted: dict[str, Any], image_size: int, channels: int) -> ImageDataset:
    root = Path(str(fitted.get("root", "")))
    named = {"train": root / "train", "validation": root / "val", "test": root / "test"}
    if fitted.get("layout") == "split folders":
        use_train = split == "validation" and not named["validation"].is_dir()
        split_root = named["train"] if use_train else named[split]
        if not split_root.is_dir():
            raise DataError(f"the image folder {split_root} this run was trained on is gone; restore it (the "
                            f"run's fitted.json names it) or train a new run")
        return load_image_folder(split_root, image_size, channels)
    names = list((fitted.get("split") or {}).get(split) or [])
    if not root.is_dir() or not names:
        raise DataError(f"the image folder {root} this run was trained on is gone; restore it (the run's "
                        f"fitted.json names it and its {split} classes) or train a new run")
    missing = [n for n in names if not (root / n).is_dir()]
    if missing:
        raise DataError(f"{len(missing)} of the {len(names)} {split} classes this run was trained with are "
                        f"missing from {root} (e.g. {missing[0]!r}); restore them or train a new run")
    ds = load_image_folder(root, image_size, channels)
    index = {n: i for i, n in enumerate(ds.class_names)}
    return ds.subset([index[n] for n in names])


def _mnist_28(split: str, classes: Sequence[int], data_dir: str | Path | None, image_size: int) -> ImageDataset:
    if image_size != 28:
        raise ConfigError("MNIST images are 28x28; use task.image_size=28")
    return mnist_split(split, classes, data_dir)


def _episodes(name: str, ds: ImageDataset, split: str, ways: int, shots: int, queries: int,
              within_alphabet: bool, augment: float) -> FewShotTasks:
    return FewShotTasks(ds, ways, shots, queries, name=f"{name} {split}", within_groups=within_alphabet,
                        augment=augment if split == "train" else 0.0)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")


# each image family's split loader, from image_tasks' keyword arguments
_SPLIT_LOADERS: dict[str, Callable[..., ImageDataset]] = {
    "omniglot": lambda split, o: omniglot_split(split, o["protocol"], o["image_size"], o["data_dir"], o["rotations"]),
    "mnist": lambda split, o: _mnist_28(split, o["classes"], o["data_dir"], o["image_size"]),
    "image_folder": lambda split, o: folder_split(split, o["data_dir"], o["image_size"], o["channels"])[0],
}


def image_tasks(family: str, split: str, ways: int, shots: int, queries: int, *, image_size: int = 28,
                data_dir: str | Path | None = None, protocol: str = "maml", rotations: bool = True,
                classes: Sequence[int] = (0, 1, 2, 3, 4), channels: int = 1,
                within_alphabet: bool = False, augment: float = 0.0) -> FewShotTasks:
    """Episodes of ``family`` (omniglot, mnist, image_folder) drawn from one ``split``; ``augment``
    distorts the training split's images (:func:`metalearn.tasks.few_shot.episodes.random_affine`)."""
    _check_split(split)
    if family not in _SPLIT_LOADERS:
        raise ConfigError(f"unknown image task family {family!r}; choose one of: {', '.join(_SPLIT_LOADERS)}")
    options = {"image_size": image_size, "data_dir": data_dir, "protocol": protocol, "rotations": rotations,
               "classes": classes, "channels": channels}
    return _episodes(family, _SPLIT_LOADERS[family](split, options), split, ways, shots, queries, within_alphabet,
                     augment)


# builders from a config's ``task`` section, for the task registry
def omniglot_from_config(t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                         cross_domain: bool = False) -> FewShotTasks:
    """The Omniglot few-shot family of one split, from the ``task.*`` settings ``t``."""
    _check_split(split)
    ds = omniglot_split(split, t.protocol, t.image_size, t.data_dir, t.rotations)
    return _episodes("omniglot", ds, split, t.ways, shots, queries, t.episodes == "within_alphabet",
                     0.0 if cross_domain else t.augment)


def mnist_from_config(t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                      cross_domain: bool = False) -> FewShotTasks:
    """MNIST episodes; ``cross_domain`` (a model trained on another family): all ten test digits."""
    _check_split(split)
    ds = _mnist_28(split, [] if cross_domain else t.classes, t.data_dir, t.image_size)
    return _episodes("mnist", ds, split, t.ways, shots, queries, t.episodes == "within_alphabet",
                     0.0 if cross_domain else t.augment)


def folder_from_config(t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                       cross_domain: bool = False, fitted: dict[str, Any] | None = None,
                       needs_rows: bool = True) -> FewShotTasks:
    """The few-shot family of one split of a user's image folder, from the ``task.*`` settings ``t``
    (with a run's stored class split, ``fitted``, when given)."""
    _check_split(split)
    ds, state = folder_split(split, t.data_dir, t.image_size, t.channels, fitted)
    family = _episodes("image_folder", ds, split, t.ways, shots, queries, t.episodes == "within_alphabet",
                       t.augment)
    family.fitted = state
    return family
