"""Grouped-table task families: one task per group of rows (a patient, a hospital, a site), so
that a model meta-trained on many groups adapts to a new group from a few of its rows.

Groups are split into meta-train / validation / test with a fixed seed (``task.split`` fractions,
``task.split_seed``; stratified by ``task.stratify`` when given); no group is in two splits and
inputs are encoded with statistics of the meta-training groups only (:mod:`metalearn.data.tables`).

Within a group, a task's support and query rows are drawn so that the query never looks into the
past of the support when there is a time column:

* ``support_until`` given: support rows from before that time, query rows from after it (glucose:
  support from day 1, query from days 2-3);
* time column, no ``support_until``: a random cut per task (training), support rows before it and
  query rows after; at evaluation the support is the group's first ``shots`` rows and the query
  every later row (a new patient's first samples predict the rest);
* no time column: random disjoint rows.

Training tasks have ``shots`` support and ``queries`` query rows (groups too small for that are
skipped, with a warning naming them); evaluation (:meth:`TableTasks.split_for_eval`) scores every
query row of a held-out group.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..._util.warn_once import warn_once
from ...batch import TaskBatch
from ...data.tables import Group, TableEncoder, TableSpec, check_target, encode_groups, read_table, split_groups
from ...errors import DataError
from ...protocols import Metric
from ..few_shot.episodes import accuracy

if TYPE_CHECKING:
    import pandas as pd

SPLITS = ("train", "validation", "test")
# a domain baseline: (group, support rows, query rows) -> predictions for the query rows, in the
# target's units
DomainBaseline = Callable[[Group, Tensor, Tensor], np.ndarray]


def rmse(outputs: Tensor, targets: Tensor) -> Tensor:
    """Root mean squared error of one task's query predictions."""
    return (outputs - targets).pow(2).mean().sqrt()


@dataclass
class GroupSplitSettings:
    """The ``task.*`` key of every grouped-table family (beside ``shots``: support rows per task,
    ``queries``: query rows): ``split_seed`` shuffles the groups before they are split into
    meta-training, validation and test groups."""

    split_seed: int = 0


@dataclass
class TableSettings(GroupSplitSettings):
    """The ``table`` family's keys, a user's own file: ``data`` (a CSV or Parquet file), ``group``
    (the column naming each row's group: patient, site, ...), ``target`` (the column to predict),
    ``features`` (input columns; None: every other column), ``time`` (support rows come before
    query rows in this column's order), ``categorical`` (one-hot columns; text columns are by
    default), ``stratify`` (split groups in proportion within each value of this column),
    ``target_type`` (auto: text is classification; regression or classification),
    ``residual_of`` (regression: predict the target minus this column), ``split`` (the train /
    validation / test shares of the groups), ``support_until`` (support rows have time < this,
    query rows >= it)."""

    data: str | None = None
    group: str | None = None
    target: str | None = None
    features: list[str] | None = None
    time: str | None = None
    categorical: list[str] = field(default_factory=list)
    stratify: str | None = None
    target_type: str = "auto"
    residual_of: str | None = None
    split: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    support_until: float | None = None


class TableTasks:
    """Tasks from the groups of one split of a grouped table; see the module docstring.

    Declares ``kind`` regression (metric RMSE in the target's units) or classification (accuracy
    in percent) from its target, the ``groups`` evaluator (per-group scores against pooled,
    own-data and fine-tuned baselines), and ``table`` input for ``metalearn adapt``.
    """

    kind = "regression"
    loss = "mse"
    metric = Metric("rmse", higher_is_better=False, fn=rmse, short="rmse")
    evaluator = "groups"
    pictures = ("support_size", "forecasts")
    adapt_input = "table_rows"
    baseline = "pretrain"
    settings: type = TableSettings
    own_baseline = "scratch"      # the same model trained on a group's support rows alone

    def __init__(self, groups: Sequence[Group], encoder: TableEncoder, spec: TableSpec, shots: int,
                 queries: int, support_until: float | None = None, name: str = "table", split: str = "train",
                 train_groups: Sequence[Group] | None = None, units: str = "", rows: bool = True) -> None:
        if support_until is not None and spec.time is None:
            raise DataError("task.support_until needs a time column: --set task.time=COLUMN")
        self.encoder, self.spec, self.name, self.split = encoder, spec, name, split
        self.has_rows = rows   # False: rebuilt from a run's fitted encoder alone, to encode a user's rows
        self.parts: dict[str, list[str]] = {}   # the group split: split name -> group names
        self.data_id: dict[str, Any] = {}       # what the rows were read from: path (or source) and sha256
        self.shots, self.queries, self.support_until = shots, queries, support_until
        self.units = units
        self.all_groups = list(groups)
        self.train_groups = list(train_groups) if train_groups is not None else self.all_groups
        self.input_shape = (encoder.input_dim,)
        self.output_dim = encoder.output_dim
        if encoder.classification:
            self.kind, self.loss = "classification", "cross_entropy"
            self.metric = Metric("accuracy (%)", higher_is_better=True, fn=accuracy, short="acc", scale=100.0,
                                 bounds=(0.0, 1.0))
        else:
            std = encoder.target_stats[1]
            self.metric = Metric(f"RMSE{f' ({units})' if units else ''}", higher_is_better=False, fn=rmse,
                                 short="rmse", scale=std)
        small = [(g.name, len(g)) for g in self.all_groups if not self._fits(g, shots, queries)]
        self.groups = [g for g in self.all_groups if self._fits(g, shots, queries)]
        if small and rows:
            listed = ", ".join(f"{n!r} ({k} rows)" for n, k in small[:8]) + (", ..." if len(small) > 8 else "")
            need = (f"{shots} support rows before task.support_until and {queries} query rows after it"
                    if support_until is not None else f"shots + queries = {shots + queries} rows")
            msg = (f"{len(small)} of {len(self.all_groups)} {split} groups of {name} have too few rows for "
                   f"{need}: {listed}")
            if not self.groups:
                raise DataError(f"{msg}; none is left. Use fewer --set task.shots / task.queries")
            warn_once(f"{msg}; they are skipped in training tasks (lower task.shots or task.queries to keep them)")

    # ---- rows of a group ----------------------------------------------------------------------
    def _pools(self, g: Group) -> tuple[Tensor, Tensor] | None:
        """Rows that may be support and rows that may be query under ``support_until`` (else None)."""
        if self.support_until is None or g.time is None:
            return None
        before = torch.nonzero(g.time < self.support_until).flatten()
        after = torch.nonzero(g.time >= self.support_until).flatten()
        return before, after

    def _fits(self, g: Group, shots: int, queries: int) -> bool:
        pools = self._pools(g)
        if pools is not None:
            return len(pools[0]) >= 1 and len(pools[1]) >= queries
        return len(g) >= shots + queries

    def _pick(self, pool: Tensor, k: int, gen: torch.Generator | None) -> Tensor:
        """``k`` rows of ``pool`` at random (all of them, in order, when ``k`` >= its size)."""
        if k >= len(pool):
            return pool
        return pool[torch.randperm(len(pool), generator=gen)[:k]].sort().values

    def sample_rows(self, g: Group, shots: int, queries: int, gen: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """A training task's support and query rows of ``g`` (see the module docstring)."""
        pools = self._pools(g)
        if pools is not None:
            s = self._pick(pools[0], shots, gen)
            if len(s) < shots:   # fewer candidate rows than shots: repeat some (still only the past)
                s = s[torch.randint(len(s), (shots,), generator=gen)]
            return s, self._pick(pools[1], queries, gen)
        n = len(g)
        if g.time is not None:
            cut = shots + int(torch.randint(n - shots - queries + 1, (1,), generator=gen))
            s = self._pick(torch.arange(cut), shots, gen)
            return s, self._pick(torch.arange(cut, n), queries, gen)
        perm = torch.randperm(n, generator=gen)
        return perm[:shots].sort().values, perm[shots:shots + queries].sort().values

    def can_evaluate(self, g: Group, shots: int) -> bool:
        """Whether ``g`` has a support row and a query row left with ``shots`` support rows."""
        pools = self._pools(g)
        if pools is not None:
            return len(pools[0]) >= 1 and len(pools[1]) >= 1
        return len(g) > shots

    def split_for_eval(self, g: Group, shots: int, gen: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Support rows (``shots``, or all that may be support) and *every* query row of a held-out
        group: the protocol of the ``groups`` evaluator."""
        pools = self._pools(g)
        if pools is not None:
            return self._pick(pools[0], shots, gen), pools[1]
        n = len(g)
        if n <= shots:
            raise DataError(f"group {g.name!r} of {self.name} has {n} rows, so {shots} support rows leave no query "
                            f"row; use fewer shots")
        if g.time is not None:
            return torch.arange(shots), torch.arange(shots, n)
        perm = torch.randperm(n, generator=gen)
        return perm[:shots].sort().values, perm[shots:].sort().values

    def task(self, g: Group, support: Tensor, query: Tensor) -> TaskBatch:
        """One task (a batch of one) from rows of ``g``."""
        return TaskBatch(g.x[support][None], g.y[support][None], g.x[query][None], g.y[query][None])

    # ---- the TaskFamily protocol ----------------------------------------------------------------
    def sample(self, num_tasks: int, generator: torch.Generator | None = None) -> TaskBatch:
        """``num_tasks`` tasks, each from a group drawn at random (without replacement while groups
        last), with ``shots`` support and ``queries`` query rows."""
        if not self.has_rows:
            raise DataError(f"{self.name} was rebuilt from a run's fitted encoder without its rows; it encodes a "
                            f"user's rows (metalearn adapt) but samples no task")
        order: list[int] = []
        while len(order) < num_tasks:
            order += torch.randperm(len(self.groups), generator=generator).tolist()
        parts = []
        for i in order[:num_tasks]:
            g = self.groups[i]
            s, q = self.sample_rows(g, self.shots, self.queries, generator)
            parts.append((g.x[s], g.y[s], g.x[q], g.y[q]))
        return TaskBatch(*(torch.stack(t) for t in zip(*parts)))

    def encode_rows(self, df: pd.DataFrame, source: str, with_target: bool) -> tuple[Tensor, Tensor | None]:
        """Inputs (and targets, when ``with_target``) of a user's rows of one new group, encoded
        with the meta-training statistics; a missing target in a support row is a DataError."""
        x = self.encoder.transform_x(df, source, fill_non_finite=not with_target)   # rows to predict: filled
        if not with_target:
            return x, None
        if self.spec.target not in df.columns:
            raise DataError(f"{source} has no target column {self.spec.target!r}; support rows need their targets")
        if df[self.spec.target].isna().any():
            check_target(df, self.spec, source)
        return x, self.encoder.transform_y(df, self.spec.target, source)

    def decode(self, outputs: Tensor, df: pd.DataFrame) -> dict[str, Any]:
        """Columns to add to the rows ``df`` from the model's outputs: the prediction in the
        target's units (and the class probabilities for classification)."""
        name = f"predicted_{self.spec.target}"
        if not self.encoder.classification:
            return {name: self.encoder.to_target(outputs, df)}
        probs = torch.softmax(outputs.detach().float(), dim=-1).numpy()
        out: dict[str, Any] = {name: [self.encoder.classes[i] for i in probs.argmax(-1)]}
        out.update({f"p_{c}": probs[:, i].round(4) for i, c in enumerate(self.encoder.classes)})
        return out

    def domain_baselines(self) -> dict[str, DomainBaseline]:
        """The field's own reference forecasts (none for a plain table)."""
        return {}

    def describe(self) -> str:
        return (f"{self.name}: {len(self.all_groups)} {self.split} groups ({len(self.train_groups)} meta-training), "
                f"{self.encoder.input_dim} inputs, target {self.spec.target!r}"
                f"{' (relative to ' + repr(self.spec.residual_of) + ')' if self.spec.residual_of else ''}")

    def __repr__(self) -> str:
        return (f"TableTasks({self.name!r}, split={self.split!r}, groups={len(self.groups)}, shots={self.shots}, "
                f"queries={self.queries}, inputs={self.encoder.input_dim}, kind={self.kind!r})")

    # ---- building ---------------------------------------------------------------------------------
    def fitted_state(self) -> dict[str, Any]:
        """What this family fitted to its data, for the run folder (``fitted.json``): the encoder,
        the group split and the data's path (or source) and SHA-256."""
        return {"family": "grouped table", "data": self.data_id, "encoder": self.encoder.to_dict(),
                "split": self.parts}

    @classmethod
    def from_frame(cls, df: pd.DataFrame, spec: TableSpec, split: str, shots: int, queries: int,
                   fractions: Sequence[float], seed: int, support_until: float | None = None, name: str = "table",
                   source: str = "the table", units: str = "", fitted: dict[str, Any] | None = None,
                   data_id: dict[str, Any] | None = None, **kwargs: Any) -> TableTasks:
        """The family of ``split`` of the grouped table ``df``: its groups split by ``fractions``
        and ``seed`` and its encoder fitted on the meta-training groups, or both as a run stored
        them (``fitted``)."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        spec.check(df, source)
        _warn_missing_groups(df, spec, source)
        if fitted is not None:
            parts = _stored_split(fitted)
        else:
            firsts = df.groupby(spec.group, sort=True).first()
            names = [str(n) for n in firsts.index]
            strata = [str(v) for v in firsts[spec.stratify]] if spec.stratify else None
            parts = split_groups(names, fractions, seed, strata)
        if not parts[split]:
            raise DataError(f"the {split} split of {source} has no group ({sum(map(len, parts.values()))} groups, "
                            f"task.split={list(fractions)}); give it a larger share or use a table with more groups")
        key = df[spec.group].astype(str)
        train_rows = df[key.isin(parts["train"])]
        enc = (TableEncoder.from_dict(fitted["encoder"]) if fitted is not None
               else TableEncoder.fit(train_rows, spec, f"{source} (meta-training groups)"))
        train = encode_groups(train_rows, spec, enc, source, keep_frame=True)
        groups = train if split == "train" else encode_groups(df[key.isin(parts[split])], spec, enc, source,
                                                              keep_frame=True)
        family = cls(groups, enc, spec, shots, queries, support_until, name, split, train, units, **kwargs)
        family.parts, family.data_id = parts, dict(data_id or {})
        return family

    @classmethod
    def without_rows(cls, fitted: dict[str, Any], spec: TableSpec, shots: int, queries: int,
                     support_until: float | None = None, name: str = "table", units: str = "") -> TableTasks:
        """The family as a run stored it, without reading any data: it encodes a user's rows and
        decodes predictions (``metalearn adapt``), and builds the run's model, but samples no task."""
        enc = TableEncoder.from_dict(fitted.get("encoder") or {})
        family = cls([], enc, spec, shots, queries, support_until, name, "train", [], units, rows=False)
        family.parts, family.data_id = _stored_split(fitted), dict(fitted.get("data") or {})
        return family

    @classmethod
    def from_config(cls, t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                    cross_domain: bool = False, fitted: dict[str, Any] | None = None,
                    needs_rows: bool = True) -> TableTasks:
        """A user's table: ``task.data`` (CSV or Parquet), ``task.group``, ``task.target`` and the
        optional ``task.features``, ``time``, ``categorical``, ``stratify``, ``target_type``,
        ``residual_of``, ``split``, ``split_seed``, ``support_until``. Rebuilt from a run
        (``fitted``), it reads the file the run was trained on, refusing it if it changed, or no
        file at all when ``needs_rows`` is False."""
        if not t.data:
            raise DataError("the table family needs a file: --set task.data=FILE.csv --set task.group=COLUMN "
                            "--set task.target=COLUMN")
        spec = TableSpec(t.group or "", t.target or "", t.features, t.time, list(t.categorical), t.stratify,
                         t.target_type, t.residual_of)
        name = Path(t.data).name
        if fitted is not None and not needs_rows:
            return cls.without_rows(fitted, spec, shots, queries, t.support_until, name=name)
        path = _trained_file(fitted) if fitted is not None else Path(t.data).resolve()
        df = _read_cached(str(path))
        return cls.from_frame(df, spec, split, shots, queries, t.split, t.split_seed, t.support_until,
                              name=name, source=str(t.data), fitted=fitted,
                              data_id={"path": str(path), "sha256": file_sha256(path)})


def frame_sha256(df: pd.DataFrame) -> str:
    """A table's content hash (bundled data that has no file of its own to hash)."""
    import pandas as pd
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes()).hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file (cached by path, size and modification time)."""
    st = path.stat()
    return _file_sha256(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, stamp: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _trained_file(fitted: dict[str, Any]) -> Path:
    """The data file a run was trained on, as it stored it; a DataError when it is gone or changed."""
    data = fitted.get("data") or {}
    path, want = Path(str(data.get("path", ""))), str(data.get("sha256", ""))
    if not path.is_file():
        raise DataError(f"the run was trained on {path} (sha256 {want}), which is missing now; put that file "
                        f"back to evaluate the run ('metalearn adapt' needs only the run folder)")
    got = file_sha256(path)
    if got != want:
        raise DataError(f"{path} has changed since the run was trained on it (sha256 {want} then, {got} now); "
                        f"its groups would no longer match the run's split and encoder. Restore the file the "
                        f"run was trained on, or train a new run on the new table")
    return path


def check_bundled(fitted: dict[str, Any] | None, df: pd.DataFrame, source: str) -> dict[str, Any]:
    """The ``data_id`` of a bundled table; a DataError when a run stored another one."""
    got = frame_sha256(df)
    want = (fitted or {}).get("data", {}).get("sha256")
    if fitted is not None and want != got:
        raise DataError(f"{source} differs from the one the run was trained on (sha256 {want} then, {got} now: "
                        f"another metalearn version?); train the run again with this version")
    return {"source": source, "sha256": got}


def _stored_split(fitted: dict[str, Any]) -> dict[str, list[str]]:
    split = fitted.get("split")
    if not isinstance(split, dict) or set(split) != set(SPLITS):
        raise DataError("the run's fitted.json holds no group split (train, validation, test); train the run again")
    return {k: [str(n) for n in split[k]] for k in SPLITS}


def _warn_missing_groups(df: pd.DataFrame, spec: TableSpec, source: str) -> None:
    """Rows without a group value belong to no task (pandas' groupby drops them): say how many, once."""
    missing = int(df[spec.group].isna().sum())
    if missing:
        warn_once(f"{missing} of {len(df)} rows of {source} have no {spec.group!r} value; they belong to no group "
                  f"and are left out (fill the column in to keep them)")


def _read_cached(path: str) -> pd.DataFrame:
    p = Path(path)
    stamp = p.stat().st_mtime_ns if p.is_file() else 0
    return _read(path, stamp).copy()


@functools.lru_cache(maxsize=4)
def _read(path: str, stamp: int) -> pd.DataFrame:
    return read_table(path)

