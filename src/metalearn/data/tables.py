"""Grouped tables: a user's CSV or Parquet file where each group of rows (a patient, a hospital, a
site) is one task, read, checked and encoded into tensors.

:func:`read_table` reads the file (pandas, from the ``tables`` extra); :class:`TableSpec` names the
columns; :class:`TableEncoder` turns rows into model inputs with statistics fitted on the
meta-training groups only: numeric features standardised (missing values filled with the
meta-training mean, and counted in a warning), categorical features one-hot with a bucket for
levels not seen in meta-training, the target standardised (regression) or mapped to class indices
(classification). Every problem with the file is a :class:`~metalearn.errors.DataError` naming the
column, the rows and the fix.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError

if TYPE_CHECKING:  # pandas is optional (the tables extra)
    import pandas as pd

TARGET_TYPES = ("auto", "regression", "classification")


def require_pandas() -> Any:
    """The pandas module, or a DataError that names the extra to install."""
    try:
        import pandas
    except ImportError:
        raise DataError("grouped tables need pandas: pip install 'metalearn-torch[tables]'") from None
    return pandas


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet (``.parquet``, ``.pq``) file as a DataFrame."""
    pd = require_pandas()
    p = Path(path)
    if not str(path):
        raise DataError("task.data is empty; give the table with --set task.data=FILE.csv (or .parquet)")
    if not p.is_file():
        raise DataError(f"table {p} does not exist; give a CSV or Parquet file with --set task.data=FILE")
    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            try:
                return pd.read_parquet(p)
            except ImportError:
                raise DataError("reading Parquet needs pyarrow: pip install 'metalearn-torch[tables]'") from None
        if name.endswith((".csv", ".csv.gz", ".txt", ".tsv", ".tsv.gz")):
            sep = "\t" if name.endswith((".tsv", ".tsv.gz")) else ","
            _refuse_duplicate_columns(list(pd.read_csv(p, sep=sep, nrows=1, header=None).iloc[0]) if
                                      p.stat().st_size else [], p)
            return pd.read_csv(p, sep=sep)
    except DataError:
        raise
    except Exception as exc:  # the parsers' many error types: a file that is not what its name says
        raise DataError(f"table {p} could not be read as {'Parquet' if 'parquet' in name else 'CSV'} "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                        f"check the file") from None
    raise DataError(f"table {p} is neither CSV nor Parquet (by its extension); give a .csv, .tsv or .parquet file")


def _refuse_duplicate_columns(header: list[Any], path: Path) -> None:
    """A header naming a column twice (pandas would rename the second ``dose.1``): a DataError."""
    seen: dict[str, int] = {}
    for i, name in enumerate(map(str, header)):
        if name in seen:
            raise DataError(f"{path} names the column {name!r} twice (columns {seen[name] + 1} and {i + 1}); "
                            f"rename or drop one of them")
        seen[name] = i


@dataclass
class TableSpec:
    """Which columns are what. ``features`` None: every other column (not group, target, time)."""

    group: str
    target: str
    features: list[str] | None = None
    time: str | None = None
    categorical: list[str] = field(default_factory=list)
    stratify: str | None = None
    target_type: str = "auto"
    residual_of: str | None = None   # regression: predict target - this column (e.g. the last reading)

    def check(self, df: pd.DataFrame, source: str = "the table") -> None:
        cols = list(df.columns)
        named: list[tuple[str, str | None]] = [("task.group", self.group), ("task.target", self.target)]
        if not self.group or not self.target:
            raise DataError("grouped tables need task.group and task.target: --set task.group=COLUMN "
                            "--set task.target=COLUMN")
        named += [("task.time", self.time), ("task.stratify", self.stratify), ("task.residual_of", self.residual_of)]
        named += [("task.features", c) for c in self.features or []]
        named += [("task.categorical", c) for c in self.categorical]
        for key, col in named:
            if col is not None and col not in cols:
                raise DataError(f"{key}={col!r} is not a column of {source}; its columns are: "
                                f"{', '.join(map(str, cols))}")
        if self.target_type not in TARGET_TYPES:
            raise DataError(f"unknown task.target_type {self.target_type!r}; choose one of: {', '.join(TARGET_TYPES)}")
        if self.target in self.feature_columns(df):
            raise DataError(f"the target {self.target!r} is also listed as a feature; remove it from task.features")

    def feature_columns(self, df: pd.DataFrame) -> list[str]:
        if self.features is not None:
            return list(self.features)
        skip = {self.group, self.target, self.time}
        return [c for c in df.columns if c not in skip]

    def target_values(self, df: pd.DataFrame) -> np.ndarray:
        """The regression target as float64, minus ``residual_of`` when set."""
        v = df[self.target].to_numpy(dtype=np.float64)
        return v - df[self.residual_of].to_numpy(dtype=np.float64) if self.residual_of else v

    def is_classification(self, df: pd.DataFrame) -> bool:
        if self.target_type != "auto":
            return self.target_type == "classification"
        col = df[self.target]
        return not _is_numeric(col) or col.dtype == bool


def _is_numeric(col: pd.Series) -> bool:
    pd = require_pandas()
    return bool(pd.api.types.is_numeric_dtype(col.dtype)) and col.dtype != bool


def _non_numbers(col: pd.Series) -> np.ndarray:
    """Which entries of an object column are not numbers (None/NaN excepted), as a boolean mask."""
    pd = require_pandas()
    return np.asarray(pd.to_numeric(col, errors="coerce").isna() & col.notna(), dtype=bool)


@dataclass
class TableEncoder:
    """Statistics fitted on the meta-training rows; ``transform`` applies them to any rows."""

    numeric: dict[str, tuple[float, float]]          # column -> (mean, std)
    categorical: dict[str, list[str]]                # column -> levels seen in meta-training
    classification: bool
    target_stats: tuple[float, float] = (0.0, 1.0)    # regression: (mean, std) of the target
    classes: list[str] = field(default_factory=list)  # classification: the labels
    order: list[str] = field(default_factory=list)    # feature columns in input order
    residual_of: str | None = None                    # the target is predicted relative to this column

    @classmethod
    def fit(cls, df: pd.DataFrame, spec: TableSpec, source: str = "the table") -> TableEncoder:
        """Fit on the meta-training rows ``df``; non-numeric values in a numeric feature, a NaN
        or constant target raise a DataError that names the column and rows."""
        check_target(df, spec, source)
        cols = spec.feature_columns(df)
        numeric: dict[str, tuple[float, float]] = {}
        categorical: dict[str, list[str]] = {}
        for c in cols:
            col = df[c]
            text = not _is_numeric(col) and spec.features is None and not _bad_numbers_share(col)
            if c in spec.categorical or text:
                categorical[c] = sorted({str(v) for v in col.dropna().tolist()})
                continue
            if not _is_numeric(col):
                rows = _rows_of(col, _non_numbers(col))
                raise DataError(f"column {c!r} of {source} is a numeric feature but holds non-numbers ({rows}); "
                                f"fix those values, or list it in task.categorical")
            values = col.to_numpy(dtype=np.float64)
            _refuse_infinite(values, col, c, source)
            finite = values[np.isfinite(values)]
            if finite.size == 0:
                raise DataError(f"column {c!r} of {source} has no values in the meta-training groups; drop it "
                                f"from task.features")
            mean, std = _standard_stats(finite, values, col, f"column {c!r} of {source}",
                                        "rescale the column or drop those rows")
            numeric[c] = (mean, std if std > 0 else 1.0)
        classification = spec.is_classification(df)
        enc = cls(numeric, categorical, classification, order=cols, residual_of=spec.residual_of)
        y = df[spec.target]
        if classification:
            enc.classes = sorted({str(v) for v in y.tolist()})
            if len(enc.classes) < 2:
                raise DataError(f"the target {spec.target!r} has a single class ({enc.classes[0]!r}) in the "
                                f"meta-training groups; a classifier needs two or more")
        else:
            if not _is_numeric(y):
                raise DataError(f"the target {spec.target!r} is not numeric; set task.target_type=classification")
            v = spec.target_values(df)
            _refuse_infinite(v, y, spec.target, source, what="target")
            mean, std = _standard_stats(v, v, y, f"the target {spec.target!r} of {source}",
                                        "rescale it (e.g. other units) or drop those rows")
            enc.target_stats = (mean, std or 1.0)
            enc.transform_y(df, spec.target, source)   # refuses a target that overflows float32 once standardised
        return enc

    @property
    def input_dim(self) -> int:
        return len(self.numeric) + sum(len(levels) + 1 for levels in self.categorical.values())

    @property
    def output_dim(self) -> int:
        return len(self.classes) if self.classification else 1

    def feature_names(self) -> list[str]:
        out: list[str] = []
        for c in self.order:
            if c in self.numeric:
                out.append(c)
            else:
                out += [f"{c}={v}" for v in self.categorical[c]] + [f"{c}=<unknown>"]
        return out

    def transform_x(self, df: pd.DataFrame, source: str = "the table", fill_non_finite: bool = False) -> Tensor:
        """``[rows, input_dim]`` float32 inputs; missing numeric values become the training mean. A
        value that is infinite, or whose standardised value overflows float32, is a DataError naming
        its column, row and value, or (``fill_non_finite``: rows to predict) the training mean with
        a warning."""
        parts = []
        for c in self.order:
            if c not in df.columns:
                raise DataError(f"{source} has no column {c!r}, which the model was trained with; add it")
            col = df[c]
            if c in self.numeric:
                mean, std = self.numeric[c]
                if not _is_numeric(col):
                    bad = _non_numbers(col)
                    if bad.any():
                        raise DataError(f"column {c!r} of {source} holds non-numbers ({_rows_of(col, bad)}); "
                                        f"fix those values")
                values = np.asarray(col.to_numpy(dtype=np.float64), dtype=np.float64).copy()
                missing = np.isnan(values)
                if missing.any():
                    warnings.warn(f"{int(missing.sum())} missing values in column {c!r} of {source} were filled "
                                  f"with the meta-training mean {mean:.4g}", stacklevel=2)
                    values[missing] = mean
                with np.errstate(over="ignore", invalid="ignore"):
                    z = (values - mean) / std
                bad = ~np.isfinite(z) | (np.abs(z) > F32_MAX)
                if bad.any():
                    if not fill_non_finite:
                        _check_float32(z, col, c, source, "feature")
                    warnings.warn(f"{int(bad.sum())} non-finite or overflowing values in column {c!r} of {source} "
                                  f"({_rows_of(col, bad)}) were filled with the meta-training mean {mean:.4g}",
                                  stacklevel=2)
                    z[bad] = 0.0
                parts.append(z[:, None])
            else:
                levels = self.categorical[c]
                index = {v: i for i, v in enumerate(levels)}
                codes = np.array([index.get(str(v), len(levels)) if v == v and v is not None else len(levels)
                                  for v in col.tolist()])
                parts.append(np.eye(len(levels) + 1)[codes])
        x = np.concatenate(parts, axis=1) if parts else np.zeros((len(df), 0))
        return torch.as_tensor(x, dtype=torch.float32)

    def transform_y(self, df: pd.DataFrame, target: str, source: str = "the table") -> Tensor:
        """Regression: ``[rows, 1]`` standardised float32; classification: ``[rows]`` int64. A
        target that is not finite, or whose standardised value overflows float32, is a DataError
        naming its row and value."""
        y = df[target]
        if self.classification:
            index = {v: i for i, v in enumerate(self.classes)}
            unknown = sorted({str(v) for v in y.tolist()} - set(index))
            if unknown:
                raise DataError(f"target {target!r} holds classes not seen in meta-training: {unknown[:5]}")
            return torch.tensor([index[str(v)] for v in y.tolist()], dtype=torch.int64)
        mean, std = self.target_stats
        if not _is_numeric(y):
            bad = _non_numbers(y)
            if bad.any():
                raise DataError(f"the target {target!r} of {source} holds non-numbers ({_rows_of(y, bad)}); the run "
                                f"predicts a number, so give numeric targets")
        v = y.to_numpy(dtype=np.float64)
        if self.residual_of:
            v = v - df[self.residual_of].to_numpy(dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            z = (v - mean) / std
        _check_float32(z, y, target, source, "target")
        return torch.as_tensor(z, dtype=torch.float32)[:, None]

    def to_target(self, pred: Tensor, df: pd.DataFrame) -> np.ndarray:
        """Model outputs for the rows ``df`` in the target's units (regression: ``[rows]`` floats)."""
        mean, std = self.target_stats
        v = pred.detach().double().reshape(-1).cpu().numpy() * std + mean
        return v + df[self.residual_of].to_numpy(dtype=np.float64) if self.residual_of else v

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": {k: list(v) for k, v in self.numeric.items()}, "categorical": self.categorical,
                "classification": self.classification, "target_stats": list(self.target_stats),
                "classes": self.classes, "order": self.order, "residual_of": self.residual_of}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableEncoder:
        """The encoder :meth:`to_dict` wrote (a run's ``fitted.json``)."""
        try:
            mean, std = data["target_stats"]
            return cls({str(k): (float(v[0]), float(v[1])) for k, v in data["numeric"].items()},
                       {str(k): [str(x) for x in v] for k, v in data["categorical"].items()},
                       bool(data["classification"]), (float(mean), float(std)), [str(c) for c in data["classes"]],
                       [str(c) for c in data["order"]], data.get("residual_of"))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(f"the stored table encoder is not what training writes ({type(exc).__name__}: {exc}); "
                            f"train the run again") from None


F32_MAX = float(np.finfo(np.float32).max)


def _rows_of(col: pd.Series, bad: np.ndarray, limit: int = 3) -> str:
    """``row i: value`` of the first ``limit`` flagged entries of ``col``."""
    idx = list(col.index[bad])
    return ", ".join(f"row {i}: {col[i]!r}" for i in idx[:limit]) + (", ..." if len(idx) > limit else "")


def _standard_stats(finite: np.ndarray, values: np.ndarray, col: pd.Series, what: str,
                    fix: str) -> tuple[float, float]:
    """Mean and standard deviation of ``finite``; a DataError naming the largest entries of
    ``col`` when they overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(finite.mean()), float(finite.std())
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise DataError(f"{what} has values too large to standardise ({_rows_of(col, _huge(values))}: their mean "
                        f"or spread overflows); {fix}")
    return mean, std


def _huge(values: np.ndarray) -> np.ndarray:
    """The entries whose square overflows float64 (else the three largest in magnitude)."""
    mag = np.abs(np.nan_to_num(values, nan=0.0))
    flags = mag > 1e154
    if not flags.any():
        flags = np.zeros_like(flags)
        flags[np.argsort(-mag)[:3]] = True
    return flags


def _refuse_infinite(values: np.ndarray, col: pd.Series, name: str, source: str, what: str = "feature") -> None:
    bad = np.isinf(values)
    if bad.any():
        raise DataError(f"{what} column {name!r} of {source} holds {int(bad.sum())} infinite values "
                        f"({_rows_of(col, bad)}); fix or drop those rows")


def _check_float32(z: np.ndarray, col: pd.Series, name: str, source: str, what: str) -> None:
    """A DataError naming the rows whose standardised value is not a finite float32."""
    bad = ~np.isfinite(z) | (np.abs(np.nan_to_num(z, nan=0.0)) > F32_MAX)
    if what == "feature":
        bad &= ~col.isna().to_numpy()
    if bad.any():
        raise DataError(f"{what} column {name!r} of {source} holds values that are not finite or too large for "
                        f"the model once standardised ({_rows_of(col, bad)}); fix or drop those rows")


def _bad_numbers_share(col: pd.Series) -> bool:
    """An object column that is mostly numbers with a few stray strings: a broken numeric column."""
    pd = require_pandas()
    values = col.dropna()
    if values.empty:
        return False
    parsed = pd.to_numeric(values, errors="coerce")
    return bool(parsed.notna().mean() >= 0.5)


def check_target(df: pd.DataFrame, spec: TableSpec, source: str = "the table") -> None:
    """A target with NaN in example rows, or one that is constant, is a DataError naming the fix."""
    y = df[spec.target]
    missing = y.isna()
    if missing.any():
        rows = ", ".join(str(i) for i in list(y.index[missing])[:5])
        raise DataError(f"the target {spec.target!r} is missing in {int(missing.sum())} rows of {source} (rows "
                        f"{rows}{', ...' if missing.sum() > 5 else ''}); drop those rows or fill them in")
    if y.nunique() < 2:
        raise DataError(f"the target {spec.target!r} is constant ({y.iloc[0]!r}) in {source}; there is nothing "
                        f"to predict: choose another task.target")


@dataclass
class Group:
    """One group's rows, in time order when there is a time column."""

    name: str
    x: Tensor                 # [rows, input_dim]
    y: Tensor                 # [rows, 1] float or [rows] int64
    time: Tensor | None       # [rows] float64
    stratum: str = ""
    frame: Any = None         # the group's rows as given (pandas), for domain baselines and reports

    def __len__(self) -> int:
        return int(self.x.shape[0])


def encode_groups(df: pd.DataFrame, spec: TableSpec, enc: TableEncoder, source: str = "the table",
                  keep_frame: bool = False) -> list[Group]:
    """The groups of ``df`` in sorted order of their names, rows sorted by time when given."""
    out = []
    for name, rows in df.groupby(spec.group, sort=True):
        if spec.time is not None:
            rows = rows.sort_values(spec.time, kind="stable")
        time = torch.tensor(rows[spec.time].to_numpy(dtype=np.float64)) if spec.time else None
        stratum = str(rows[spec.stratify].iloc[0]) if spec.stratify else ""
        out.append(Group(str(name), enc.transform_x(rows, source), enc.transform_y(rows, spec.target, source), time,
                         stratum, rows.reset_index(drop=True) if keep_frame else None))
    return out


def split_groups(names: Sequence[str], fractions: Sequence[float], seed: int,
                 strata: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Groups into train / validation / test by ``fractions`` with a fixed seed; no group is in two
    splits. With ``strata`` each stratum is shuffled on its own and the strata are interleaved in
    proportion, so every split holds each stratum in (nearly) the same share and the split sizes
    are those of ``fractions`` exactly (16 / 4 / 10 of 30 patients in three cohorts: 5-5-6 / 1-1-2
    / 3-3-4)."""
    if len(fractions) != 3 or any(f < 0 or not math.isfinite(f) for f in fractions) or sum(fractions) <= 0:
        raise DataError(f"task.split must be three non-negative fractions [train, validation, test], got "
                        f"{list(fractions)}")
    total = sum(fractions)
    strata = list(strata) if strata is not None else [""] * len(names)
    gen = torch.Generator().manual_seed(seed)
    keyed = []
    for s in sorted(set(strata)):
        members = sorted(n for n, st in zip(names, strata) if st == s)
        perm = [members[i] for i in torch.randperm(len(members), generator=gen).tolist()]
        keyed += [((rank + 0.5) / len(perm), s, name) for rank, name in enumerate(perm)]
    order = [name for _, _, name in sorted(keyed)]
    n_test = round(len(order) * fractions[2] / total)
    n_val = round(len(order) * fractions[1] / total)
    return {"test": sorted(order[:n_test]), "validation": sorted(order[n_test:n_test + n_val]),
            "train": sorted(order[n_test + n_val:])}
