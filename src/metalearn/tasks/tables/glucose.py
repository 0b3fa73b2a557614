"""``glucose``: forecast a type-1-diabetes patient's CGM 30 minutes ahead, one task per patient of
the UVA/Padova simulator (:mod:`metalearn.data.glucose`).

Protocol: the patients (29 of the 30: child#008's simulated record collapses, see
:data:`metalearn.data.glucose.EXCLUDED`) are split by a fixed seed (``task.split_seed``),
stratified by cohort, into 15 meta-training, 4 validation (checkpoint choice and every tuned choice
of the baselines) and 10 test patients (touched only by the final evaluation): the 16 / 4 / 10
shares of 30. A task's support rows are windows from day 1 (``k`` sampled across the day; k = 288
takes every day-1 window with a full hour of history, 277 of them), its query rows every window of
days 2 and 3. The model predicts the change from the current reading (``residual_of: cgm``);
errors are in mg/dL. The field's reference forecast is persistence (the current reading).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from ...data.glucose import EXCLUDED, FEATURES, glucose_windows
from ...data.tables import Group, TableSpec
from .grouped import DomainBaseline, GroupSplitSettings, TableTasks, check_bundled

SPLIT = (16, 4, 10)      # patients: meta-train, validation, test
SUPPORT_UNTIL = 1440     # minutes: support from day 1, query from days 2-3


class GlucoseTasks(TableTasks):
    """Per-patient CGM forecasting, 30 minutes ahead; see the module docstring."""
    settings = GroupSplitSettings

    @classmethod
    def from_config(cls, t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                    cross_domain: bool = False, fitted: dict[str, Any] | None = None,
                    needs_rows: bool = True) -> GlucoseTasks:
        spec = TableSpec(group="patient", target="cgm_30", features=list(FEATURES), time="minute",
                         stratify="cohort", residual_of="cgm")
        table, source = glucose_windows(), "the glucose data"
        family = cls.from_frame(table, spec, split, shots, queries, SPLIT, t.split_seed,
                                support_until=SUPPORT_UNTIL, name="glucose (UVA/Padova, 30 min)",
                                source=source, units="mg/dL", fitted=fitted,
                                data_id=check_bundled(fitted, table, source))
        assert isinstance(family, GlucoseTasks)
        return family

    def describe(self) -> str:
        left = "; ".join(f"{p} left out: {why}" for p, why in EXCLUDED.items())
        return f"{super().describe()}. {left}"

    def domain_baselines(self) -> dict[str, DomainBaseline]:
        def persistence(g: Group, support: Tensor, query: Tensor) -> np.ndarray:
            return g.frame["cgm"].to_numpy(dtype=np.float64)[query.numpy()]
        return {"persistence (current reading)": persistence}
