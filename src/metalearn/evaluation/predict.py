"""Adapt a run to a new task's own examples and predict the rest: what ``metalearn adapt`` does, as
functions of the Python API. :func:`predict_table` takes a new group's table rows (support rows with
their targets, query rows without); :func:`predict_images` takes folders of images (one subfolder
per class for the support set)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ..data.image_folder import load_episode_folders
from ..errors import ConfigError
from ..runs import Run
from ..training.build import build_tasks
from ..training.loading import load_algorithm

if TYPE_CHECKING:
    import pandas as pd


@runtime_checkable
class RowsFamily(Protocol):
    """A family whose tasks are a group's table rows: it turns a user's rows into model inputs and
    targets, and the model's outputs back into named prediction columns."""

    def encode_rows(self, df: pd.DataFrame, source: str, with_target: bool) -> tuple[Tensor, Tensor | None]: ...

    def decode(self, outputs: Tensor, df: pd.DataFrame) -> dict[str, Any]: ...


def _check_steps(steps: int | None) -> None:
    if steps is not None and steps < 0:
        raise ConfigError(f"--steps must be >= 0, got {steps}")


def predict_table(run: Path | str, support: pd.DataFrame, query: pd.DataFrame, steps: int | None = None,
                  support_name: str = "the support rows", query_name: str = "the query rows") -> pd.DataFrame:
    """The ``query`` rows with a ``predicted_<target>`` column (and ``p_<class>`` columns for a
    classifier), after adapting the run's best model to the ``support`` rows (with targets) in
    ``steps`` inner steps (default: the run's ``algo.inner_steps``)."""
    run_dir = Run.open(run)
    cfg = run_dir.load_config()
    family = build_tasks(cfg, "train", needs_rows=False)   # the run's fitted encoder: no data read
    if not isinstance(family, RowsFamily):
        raise ConfigError(f"a {cfg.task.family} run does not adapt to table rows; use a table run")
    _check_steps(steps)
    if len(support) == 0:
        raise ConfigError(f"{support_name} has no rows; give at least one row with its target")
    xs, ys = family.encode_rows(support, support_name, with_target=True)
    xq, _ = family.encode_rows(query, query_name, with_target=False)
    assert ys is not None  # encode_rows with_target=True gives the targets
    algo = load_algorithm(run_dir, cfg)
    learner = algo.adapt(xs, ys, steps=steps if steps is not None else cfg.algo.inner_steps)
    with torch.no_grad():
        out = learner(xq)
    result = query.copy()
    for name, values in family.decode(out, query).items():
        result[name] = values
    return result


@dataclass
class ImagePredictions:
    """What :func:`predict_images` returns: the class names (the support subfolders), each query
    image's file, predicted class index and class probabilities, and the query labels when the query
    folder has class subfolders (None otherwise)."""

    classes: list[str]
    support_size: int
    files: list[Path]
    predicted: list[int]
    probabilities: list[list[float]]
    labels: list[int] | None
    steps: int

    @property
    def accuracy(self) -> float | None:
        """Query accuracy in percent, when the query images are labelled."""
        if self.labels is None:
            return None
        return 100.0 * sum(p == y for p, y in zip(self.predicted, self.labels)) / max(len(self.labels), 1)

    def rows(self) -> list[list[str]]:
        """CSV rows: a header ``image, predicted, p_<class>...``, then one row per query image."""
        out = [["image", "predicted", *[f"p_{n}" for n in self.classes]]]
        for f, p, row in zip(self.files, self.predicted, self.probabilities):
            out.append([str(f), self.classes[p], *[f"{v:.4f}" for v in row]])
        return out


def predict_images(run: Path | str, support: Path, query: Path, steps: int = 10, invert: str = "auto",
                   resize: bool = False) -> ImagePredictions:
    """Adapt an image run's best model to the classes of ``support`` (one subfolder of images per
    class) in ``steps`` inner steps and classify the images of ``query``; ``invert`` (auto, yes,
    no) inverts grey levels (auto: when images have a light background), ``resize`` accepts images
    of other sizes."""
    run_dir = Run.open(run)
    cfg = run_dir.load_config()
    _check_steps(steps)
    names, xs, ys, q_files, xq, yq = load_episode_folders(
        support, query, cfg.task.image_size, cfg.task.channels, invert, resize)
    if len(names) > cfg.task.ways:
        raise ConfigError(f"the support folder has {len(names)} classes but the model was meta-trained "
                          f"for {cfg.task.ways}-way tasks; use at most {cfg.task.ways} classes")
    algo = load_algorithm(run_dir, cfg)
    learner = algo.adapt(xs, ys, steps=steps)
    with torch.no_grad():
        probs = torch.softmax(learner(xq)[:, :len(names)], dim=-1)
    return ImagePredictions(list(names), len(ys), list(q_files), probs.argmax(-1).tolist(), probs.tolist(),
                            None if yq is None else yq.tolist(), steps)
