"""Glucose forecasting per patient (type 1 diabetes) on the UVA/Padova simulator's 30 virtual
patients (10 adolescents, 10 adults, 10 children) as packaged in ``simglucose`` 0.2.11.

The data ship with metalearn (``glucose_uvapadova.csv.gz``, checksum in ``.sha256``): 3 simulated
days per patient with a basal-bolus controller, random meals and the GuardianRT sensor (a CGM
reading every 5 minutes), made by ``scripts/glucose/make_dataset.py`` in a virtual environment of
its own (``scripts/glucose/make_venv.sh``), so that neither users nor tests need the simulator.

:func:`glucose_windows` turns the readings into one row per forecast: from the last hour of CGM
readings and the last hour of carbohydrates and insulin (12 five-minute values each) and the time
of day, predict the CGM 30 minutes ahead (``cgm_30``). ``minute`` is the time of the last reading,
``day`` its day; a window's history may reach into the day before.

One patient is left out (:data:`EXCLUDED`): child#008's simulated plasma glucose falls to 0 at
about minute 1170 and the model stays there (simglucose's gym environment would end the episode;
the simulation object does not), so its CGM reads the sensor floor of 39 mg/dL for the remaining
2.5 days. The file keeps its rows, as simulated; the task family has 29 patients.
"""
from __future__ import annotations

import functools
import hashlib
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from .tables import require_pandas

if TYPE_CHECKING:
    import pandas as pd

FILE = "glucose_uvapadova.csv.gz"
LAGS = 12              # one hour of 5-minute readings
HORIZON = 6            # 30 minutes ahead
STEP_MINUTES = 5
SIGNALS = ("cgm", "cho", "insulin")
# patients whose simulated record is not a usable forecasting task, and why
EXCLUDED = {"child#008": "its simulated glucose collapses to 0 at minute 1170 and its CGM stays at the "
                         "sensor floor (39 mg/dL) for the remaining 2.5 days"}


def lag_name(signal: str, lag: int) -> str:
    """``cgm`` for the current reading, ``cgm_m5`` for the one 5 minutes earlier, ..."""
    return signal if lag == 0 else f"{signal}_m{lag * STEP_MINUTES}"


FEATURES = [lag_name(s, lag) for s in SIGNALS for lag in range(LAGS)] + ["tod_sin", "tod_cos"]


def _check_sum(data: bytes) -> None:
    ref = resources.files("metalearn") / "data" / (FILE.replace(".csv.gz", ".sha256"))
    if not ref.is_file():
        return
    expected = ref.read_text().split()[0]
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise DataError(f"{FILE} has SHA-256 {got}, expected {expected}: the packaged file is damaged; "
                        f"reinstall metalearn or regenerate it with scripts/glucose/make_dataset.py")


@functools.lru_cache(maxsize=1)
def load_glucose_readings() -> pd.DataFrame:
    """The packaged readings: ``patient, cohort, day, minute, cgm, cho, insulin`` (864 rows per patient)."""
    pd = require_pandas()
    import io
    res = resources.files("metalearn") / "data" / FILE
    if not res.is_file():
        raise DataError(f"{FILE} is missing from the metalearn package; reinstall metalearn")
    data = res.read_bytes()
    _check_sum(data)
    return pd.read_csv(io.BytesIO(data), compression="gzip")


@functools.lru_cache(maxsize=1)
def glucose_windows() -> pd.DataFrame:
    """One row per (patient, reading) with a full hour of history and a reading 30 minutes later."""
    pd = require_pandas()
    readings = load_glucose_readings()
    parts = []
    for patient, rows in readings.groupby("patient", sort=True):
        if patient in EXCLUDED:
            continue
        rows = rows.sort_values("minute")
        n = len(rows)
        idx = np.arange(LAGS - 1, n - HORIZON)
        cols: dict[str, np.ndarray] = {}
        for s in SIGNALS:
            v = rows[s].to_numpy(dtype=np.float64)
            for lag in range(LAGS):
                cols[lag_name(s, lag)] = v[idx - lag]
        minute = rows["minute"].to_numpy()[idx]
        tod = 2 * np.pi * (minute % 1440) / 1440.0
        cols["tod_sin"], cols["tod_cos"] = np.sin(tod), np.cos(tod)
        cols["cgm_30"] = rows["cgm"].to_numpy(dtype=np.float64)[idx + HORIZON]
        frame = pd.DataFrame(cols)
        frame.insert(0, "minute", minute)
        frame.insert(0, "day", rows["day"].to_numpy()[idx])
        frame.insert(0, "cohort", rows["cohort"].iloc[0])
        frame.insert(0, "patient", patient)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)
