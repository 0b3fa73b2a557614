"""N-way K-shot Q-query episodes over an in-memory ``ImageDataset`` (Vinyals et al. 2016;
Finn et al. 2017, section 5.2).

Each episode picks ``ways`` distinct classes in a random order (so labels are permuted per
episode), then ``shots + queries`` distinct images of each: the first ``shots`` form the support
set, the rest the query set. Everything is tensor indexing on one uint8 tensor.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...batch import TaskBatch
from ...data.images import ImageDataset
from ...errors import ConfigError
from ...protocols import Metric


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of correct argmax predictions."""
    return (logits.argmax(dim=-1) == labels).float().mean()


def random_affine(images: Tensor, strength: float, generator: torch.Generator | None = None) -> Tensor:
    """Each image of ``[N, C, H, W]`` under its own small random affine distortion, the ranges of
    Koch, Zemel & Salakhutdinov (2015, "Siamese Neural Networks for One-shot Image Recognition")
    times ``strength``: rotation within +-10 degrees, shear within +-0.3, scale within 0.8-1.2 per
    axis, translation within +-2 pixels; the background (0) fills what comes in from outside."""
    n, _, h, w = images.shape
    u = lambda: (torch.rand(n, generator=generator) * 2 - 1) * strength  # noqa: E731
    angle, shear = u() * math.radians(10), u() * 0.3
    sx, sy = 1 + 0.2 * u(), 1 + 0.2 * u()
    tx, ty = u() * 2 / (w / 2), u() * 2 / (h / 2)        # pixels, in affine_grid's [-1, 1] units
    cos, sin = angle.cos(), angle.sin()
    # rotation @ shear @ scale, then the shift: where each output pixel samples the input
    theta = torch.stack([torch.stack([cos * sx, (cos * shear - sin) * sy, tx], -1),
                         torch.stack([sin * sx, (sin * shear + cos) * sy, ty], -1)], 1).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class FewShotTasks:
    """A distribution of N-way K-shot classification episodes over the classes of ``dataset``."""

    loss = "cross_entropy"
    # declarations (metalearn.protocols.TaskFamily)
    kind = "classification"
    metric = Metric("accuracy (%)", higher_is_better=True, fn=accuracy, short="acc", scale=100.0,
                    bounds=(0.0, 1.0))
    evaluator = "adaptation"
    pictures = ("episode", "steps")
    adapt_input = "image_folders"
    baseline = None

    def __init__(self, dataset: ImageDataset, ways: int, shots: int, queries: int, name: str = "",
                 within_groups: bool = False, augment: float = 0.0) -> None:
        label = f"{name}: " if name else ""
        if not 0 <= augment <= 3:
            raise ConfigError(f"{label}task.augment must be between 0 (off) and 3 (1: the affine ranges of Koch et "
                              f"al. 2015), got {augment}")
        self.augment = float(augment)
        for key, value in (("ways", ways), ("shots", shots), ("queries", queries)):
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{label}{key} must be a positive integer, got {value!r}")
        if ways > dataset.num_classes:
            raise ConfigError(f"{label}ways={ways} but this split has {dataset.num_classes} classes; "
                              f"use ways <= {dataset.num_classes}")
        need = shots + queries
        smallest = int(dataset.counts.min())
        if need > smallest:
            if dataset.root is None:
                raise ConfigError(f"{label}shots + queries = {need} but the smallest class has "
                                  f"{smallest} images; use shots + queries <= {smallest}")
            raise ConfigError(label + _too_small(dataset, ways, shots, queries))
        self.dataset, self.ways, self.shots, self.queries, self.name = dataset, ways, shots, queries, name
        self.input_shape = dataset.image_shape
        self.output_dim = ways
        self._max_count = int(dataset.counts.max())
        self.groups: list[str] = []          # within_groups: the groups (alphabets) episodes come from
        if within_groups:
            self._group_classes(label)
        self.fitted: dict[str, Any] | None = None   # what a run keeps of the data (an image folder's split)

    def fitted_state(self) -> dict[str, Any] | None:
        """What the run folder keeps (``fitted.json``) to build these tasks again: an image folder's
        resolved path and class split; None for a fixed dataset (Omniglot, MNIST)."""
        return self.fitted

    def _group_classes(self, label: str) -> None:
        """Episodes within one group: classes named ``GROUP/CLASS`` (Omniglot's ``Alphabet/characterNN``,
        rotations included as classes of their alphabet); only groups with at least ``ways`` classes
        take part, each equally often."""
        names = self.dataset.class_names
        if not all("/" in n for n in names):
            raise ConfigError(f"{label}task.episodes=within_alphabet needs classes grouped as GROUP/CLASS "
                              f"(Omniglot's alphabets); use task.episodes=random")
        group_names = sorted({n.split("/")[0] for n in names})
        index = {g: i for i, g in enumerate(group_names)}
        self._group_of = torch.tensor([index[n.split("/")[0]] for n in names])
        sizes = torch.bincount(self._group_of, minlength=len(group_names))
        eligible = (sizes >= self.ways).nonzero().flatten()
        if len(eligible) == 0:
            raise ConfigError(f"{label}{self.ways}-way within-alphabet episodes need an alphabet with at least "
                              f"{self.ways} characters, but the largest here has {int(sizes.max())}; use "
                              f"--set task.ways={int(sizes.max())} or fewer, or a split with larger alphabets "
                              f"(task.protocol=lake tests on the 20 evaluation alphabets, all with 20 or more)")
        self._eligible = eligible
        self.groups = [group_names[int(i)] for i in eligible]
        self.groups_total = len(group_names)

    def describe(self) -> str:
        """One line on how episodes are drawn."""
        if not self.groups:
            return f"{self.ways}-way episodes over all {self.num_classes} classes"
        return (f"{self.ways}-way within-alphabet episodes over the {len(self.groups)} of {self.groups_total} "
                f"alphabets with at least {self.ways} characters ({', '.join(self.groups)})")

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def sample_indices(self, num_tasks: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(classes [T, ways], image indices [T, ways, shots + queries])`` of ``num_tasks`` episodes."""
        ds = self.dataset
        keys = torch.rand(num_tasks, ds.num_classes, generator=generator)
        if self.groups:  # one eligible group per episode, then classes within it
            pick = self._eligible[torch.randint(len(self._eligible), (num_tasks,), generator=generator)]
            keys.masked_fill_(self._group_of.unsqueeze(0) != pick.unsqueeze(1), 2.0)
        classes = keys.argsort(dim=1)[:, :self.ways]
        counts = ds.counts[classes]                                       # [T, ways]
        keys = torch.rand(num_tasks, self.ways, self._max_count, generator=generator)
        keys.masked_fill_(torch.arange(self._max_count) >= counts.unsqueeze(-1), 2.0)
        within = keys.topk(self.shots + self.queries, dim=-1, largest=False).indices
        return classes, ds.offsets[classes].unsqueeze(-1) + within

    def sample(self, num_tasks: int, generator: torch.Generator | None = None) -> TaskBatch:
        """``num_tasks`` episodes: inputs float ``[T, ways * n, C, H, W]`` in [0, 1], labels long."""
        _, idx = self.sample_indices(num_tasks, generator)
        x = self.dataset.images[idx].float().div_(255)                  # [T, ways, k+q, C, H, W]
        if self.augment:
            x = random_affine(x.flatten(0, 2), self.augment, generator).view_as(x)
        labels = torch.arange(self.ways).view(1, -1, 1).expand(num_tasks, -1, self.shots + self.queries)
        k = self.shots
        flat = lambda t: t.reshape(num_tasks, -1, *t.shape[3:])  # noqa: E731
        return TaskBatch(flat(x[:, :, :k]), flat(labels[:, :, :k]), flat(x[:, :, k:]), flat(labels[:, :, k:]))

    def __repr__(self) -> str:
        return (f"FewShotTasks({self.name or 'dataset'}: {self.num_classes} classes, {self.ways}-way "
                f"{self.shots}-shot, {self.queries} queries)")


def _images(n: int) -> str:
    return f"{n} image" + ("" if n == 1 else "s")


def _too_small(dataset: ImageDataset, ways: int, shots: int, queries: int, listed: int = 5) -> str:
    """Which class folders of an image folder hold fewer than ``shots + queries`` images."""
    need = shots + queries
    counts = dataset.counts.tolist()
    small = [c for c, n in enumerate(counts) if n < need]
    episodes = (f"{ways}-way {shots}-shot episodes with {queries} quer{'y' if queries == 1 else 'ies'} "
                f"need shots + queries = {need} images per class; add images or lower the shots or queries "
                f"(task.shots, task.queries, eval.queries)")
    if len(small) == 1:
        c = small[0]
        return f"image folder class {dataset.class_source(c)} has {_images(counts[c])} but {episodes}"
    names = ", ".join(f"{dataset.class_source(c)} ({_images(counts[c])})" for c in small[:listed])
    more = f" and {len(small) - listed} more" if len(small) > listed else ""
    return f"{len(small)} image folder classes have fewer than {need} images: {names}{more}; {episodes}"
