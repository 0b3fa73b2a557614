"""A run's algorithm with its saved weights: what evaluation, prediction and reports start from.

It sits below evaluation and prediction so that following a run folder walks one way: the config
and checkpoint come up from ``runs``, the family and algorithm are built here, and nothing above
has to come back down for them.
"""
from __future__ import annotations

from ..algorithms import Algorithm
from ..config import Config
from ..runs import Run, load_checkpoint, load_weights
from .build import build_algorithm, build_tasks


def load_algorithm(run: Run, cfg: Config | None = None, which: str = "best") -> Algorithm:
    """The algorithm of ``run`` (built from its config) with the weights of its ``best``, ``last``
    or kept ``step-N`` checkpoint, in evaluation mode."""
    cfg = cfg or run.load_config()
    algo = build_algorithm(cfg, build_tasks(cfg, needs_rows=False))
    path = run.find_checkpoint(which)
    load_weights(algo, load_checkpoint(path)["model"], path)
    return algo.eval()
