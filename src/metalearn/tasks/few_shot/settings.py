"""The ``task.*`` keys of the few-shot image families (``omniglot``, ``mnist``, ``image_folder``),
beside the keys every family shares (``family``, ``shots``: support images per class,
``queries``: query images per class, ``data_dir``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import ConfigError

EPISODES = ("random", "within_alphabet")


@dataclass
class ImageSettings:
    """Keys of every few-shot image family.

    ways: classes per episode; image_size: images are resized to this many pixels square;
    episodes: ``random`` classes, or ``within_alphabet`` (one alphabet or group each, a proxy for
    Lake et al.'s within-alphabet benchmark); augment: random affine distortions of the training
    images (1: Koch et al.'s).
    """

    ways: int = 5
    image_size: int = 28
    episodes: str = "random"
    augment: float = 0.0

    def __post_init__(self) -> None:
        if self.ways <= 0 or self.image_size <= 0:
            raise ConfigError("task.ways and task.image_size must be positive")
        if self.episodes not in EPISODES:
            raise ConfigError(f"unknown task.episodes {self.episodes!r}; choose one of: {', '.join(EPISODES)}")


@dataclass
class OmniglotSettings(ImageSettings):
    """protocol: ``maml`` (Finn et al.'s 1,100 / 100 / 423 character split) or ``lake`` (the
    background and evaluation alphabets); rotations: rotated training characters as new classes."""

    protocol: str = "maml"
    rotations: bool = True


@dataclass
class MnistSettings(ImageSettings):
    """classes: the training digits (validation and test use the others)."""

    classes: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])


@dataclass
class FolderSettings(ImageSettings):
    """channels: 1 (grey) or 3 (RGB)."""

    channels: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.channels not in (1, 3):
            raise ConfigError(f"task.channels must be 1 (grey) or 3 (RGB), got {self.channels}; "
                              f"use --set task.channels=1 or --set task.channels=3")
