"""Registry of what ``metalearn adapt RUN --support S --query Q`` accepts, by the name a task family
declares (``adapt_input``): ``image_folders`` (a folder of class subfolders, and a folder of images
to classify) and ``table_rows`` (CSV or Parquet files of a new group's rows). An adapter reads the
user's files, adapts the run's model with :mod:`metalearn.evaluation.predict` and returns the
predictions as CSV text with a summary for the terminal. Adding what ``adapt`` accepts is one class
of this shape plus one line here."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from .._util.registry import Registry
from ..config import Config
from ..data.tables import read_table
from ..errors import ConfigError
from ..protocols import declared
from ..runs import Run
from ..tasks import get_task_family
from .predict import predict_images, predict_table


@dataclass(frozen=True)
class AdaptOptions:
    """The options of ``metalearn adapt``: inner ``steps`` (None: the adapter's default), and for
    images whether to ``invert`` grey levels (auto, yes, no) and ``resize`` images of other sizes."""

    steps: int | None = None
    invert: str = "auto"
    resize: bool = False


@dataclass
class Prediction:
    """An adapter's output: the predictions as CSV text, how many, and lines that summarise them
    (``{out}`` in them stands for the file the CSV is written to)."""

    csv: str
    count: int
    summary: list[str] = field(default_factory=list)

    def lines(self, out: Path | str) -> list[str]:
        return [line.replace("{out}", str(out)) for line in self.summary]


@runtime_checkable
class Adapter(Protocol):
    """What ``metalearn adapt`` accepts for a kind of family, registered by ``name``; ``inputs``
    says it in words (for errors and help)."""

    name: str
    inputs: str

    def adapt(self, run: Run, support: Path, query: Path, options: AdaptOptions) -> Prediction: ...


class ImageFolders:
    """Support: one subfolder of images per class; query: a folder of images (with class subfolders,
    the accuracy is reported too). Default 10 inner steps."""

    name = "image_folders"
    inputs = "folders of images (the support folder with one subfolder per class)"
    default_steps = 10

    def adapt(self, run: Run, support: Path, query: Path, options: AdaptOptions) -> Prediction:
        steps = self.default_steps if options.steps is None else options.steps
        result = predict_images(run.path, support, query, steps, options.invert, options.resize)
        buf = io.StringIO()
        csv.writer(buf).writerows(result.rows())
        lines = [f"adapted to {len(result.classes)} classes ({', '.join(result.classes)}) from "
                 f"{result.support_size} support images in {steps} steps; wrote {len(result.files)} predictions "
                 "to {out}"]
        if result.labels is not None:
            right = sum(p == y for p, y in zip(result.predicted, result.labels))
            lines.append(f"query accuracy: {result.accuracy:.1f}% ({right}/{len(result.labels)})")
        return Prediction(buf.getvalue(), len(result.files), lines)


class TableRows:
    """Support: a CSV or Parquet file of a new group's rows with their targets; query: rows to
    predict. Default: the run's ``algo.inner_steps``."""

    name = "table_rows"
    inputs = "CSV or Parquet files of rows"

    def adapt(self, run: Run, support: Path, query: Path, options: AdaptOptions) -> Prediction:
        for flag, path in (("--support", support), ("--query", query)):
            if not path.is_file():
                raise ConfigError(f"{flag} {path} is not a file; a table run adapts to a CSV or Parquet file of rows")
        support_rows, query_rows = read_table(support), read_table(query)
        result = predict_table(run.path, support_rows, query_rows, options.steps, str(support), str(query))
        target = next(c for c in result.columns if c.startswith("predicted_"))
        return Prediction(result.to_csv(index=False), len(query_rows),
                          [f"adapted to {len(support_rows)} support rows of {support}; wrote {len(query_rows)} "
                           f"predictions ({target}) to " + "{out}"])


_ADAPTERS: Registry[Adapter] = Registry("adapter")


def register_adapter(adapter: Adapter) -> None:
    """Register ``adapter`` under its ``name``, the value a task family declares as ``adapt_input``."""
    _ADAPTERS.add(adapter.name, adapter)


register_adapter(ImageFolders())
register_adapter(TableRows())


def unregister_adapter(name: str) -> None:
    """Remove the input adapter registered as ``name``."""
    _ADAPTERS.remove(name)


def list_adapters() -> list[str]:
    """The registered input adapters of ``metalearn adapt``, sorted."""
    return _ADAPTERS.names()


def get_adapter(name: str) -> Adapter:
    """The input adapter registered as ``name``; an unknown name lists the valid ones."""
    return _ADAPTERS.get(name)


def adapter_for(cfg: Config) -> Adapter:
    """The adapter the task family of ``cfg`` declares; a family without one is refused, naming
    what ``metalearn adapt`` accepts and the Python API."""
    name = declared(get_task_family(cfg.task.family).cls, "adapt_input")
    if name is None:
        accepted = " or ".join(a.inputs for a in _ADAPTERS.values())
        raise ConfigError(f"metalearn adapt takes {accepted}; a {cfg.task.family} run adapts through the Python "
                          f"API (Algorithm.adapt)")
    return get_adapter(name)
