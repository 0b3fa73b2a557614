"""Adapt a grouped-table run to a new group's own rows and predict the rest: what ``metalearn
adapt RUN --support FILE --query FILE`` does for table runs, as a function of the Python API."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from ..errors import ConfigError
from ..protocols import declared
from ..runs import Run
from ..training.build import build_tasks
from .adaptation import load_algorithm

if TYPE_CHECKING:
    import pandas as pd


def predict_table(run: Path | str, support: "pd.DataFrame", query: "pd.DataFrame", steps: int | None = None,
                  support_name: str = "the support rows", query_name: str = "the query rows") -> "pd.DataFrame":
    """The ``query`` rows with a ``predicted_<target>`` column (and ``p_<class>`` columns for a
    classifier), after adapting the run's best model to the ``support`` rows (with targets) in
    ``steps`` inner steps (default: the run's ``algo.inner_steps``)."""
    run_dir = Run.open(run)
    cfg = run_dir.load_config()
    family = cast(Any, build_tasks(cfg, "train"))
    if declared(family, "adapt_input") != "table_rows":
        raise ConfigError(f"a {cfg.task.family} run does not adapt to table rows; use a table run")
    if steps is not None and steps < 0:
        raise ConfigError(f"--steps must be >= 0, got {steps}")
    if len(support) == 0:
        raise ConfigError(f"{support_name} has no rows; give at least one row with its target")
    xs, ys = family.encode_rows(support, support_name, with_target=True)
    xq, _ = family.encode_rows(query, query_name, with_target=False)
    algo = load_algorithm(run_dir, cfg)
    learner = algo.adapt(xs, ys, steps=steps if steps is not None else cfg.algo.inner_steps)
    with torch.no_grad():
        out = learner(xq)
    result = query.copy()
    for name, values in family.decode(out, query).items():
        result[name] = values
    return result
