"""Short mode: ``METALEARN_SHORT=1`` caps every run's steps, tasks, episodes, rounds and trials, so
that a documented command (a 30-minute training, a 100-round federation) runs in seconds with the
same code path. CI runs the code blocks of the README and the guides this way; the numbers it
prints mean nothing, and it says so on stderr once per process.

The caps apply where a config is validated (:func:`~metalearn.config.validate`), so a run's
``config.yaml`` records the values it actually used, and to the few command-line counts that are
not config keys (``evaluate --tasks``, ``compare --episodes``, ``tune --trials``).
"""
from __future__ import annotations

import os
import sys
from typing import Any

from ..protocols import declared

ENV = "METALEARN_SHORT"
STEPS, TASKS, EPISODES, ROUNDS, TRIALS, HORIZON = 3, 10, 2, 2, 2, 20
INNER = 2   # inner steps scored at test, and the most any baseline's own loop takes
META_BATCH, VAL_TASKS = 4, 4
_said: list[bool] = []


def short_mode() -> bool:
    """Whether ``METALEARN_SHORT`` is set to something other than empty or ``0``."""
    return os.environ.get(ENV, "") not in ("", "0")


def _say() -> None:
    if not _said:
        _said.append(True)
        print(f"metalearn: {ENV} is set: steps, tasks, episodes, rounds and trials are capped; the numbers "
              f"printed are not results", file=sys.stderr)


def capped(value: int, cap: int) -> int:
    """``min(value, cap)`` in short mode, else ``value``."""
    if not short_mode():
        return value
    _say()
    return min(value, cap)


def shorten(cfg: Any) -> Any:
    """The config with short mode's caps applied (in place); unchanged outside short mode."""
    if not short_mode():
        return cfg
    _say()
    t = cfg.train
    t.steps = min(t.steps, STEPS)
    t.meta_batch = min(t.meta_batch, META_BATCH)
    t.log_every, t.val_every, t.ckpt_every = 1, min(t.val_every, t.steps), min(t.ckpt_every, t.steps)
    t.val_tasks = min(t.val_tasks, VAL_TASKS)
    t.time_limit = None
    t.threads = 1   # two short runs side by side on a 2-core machine each get a core
    t.keep = [k for k in t.keep if k <= t.steps]
    cfg.eval.tasks = min(cfg.eval.tasks, TASKS)
    cfg.eval.repeats = min(cfg.eval.repeats, 2)
    cfg.eval.steps = sorted(s for s in cfg.eval.steps if s <= INNER) or [1]
    cfg.eval.support_sizes = cfg.eval.support_sizes[:2]
    f = cfg.fed
    f.rounds, f.eval_every = min(f.rounds, ROUNDS), 1
    f.eval_episodes, f.local_steps = min(f.eval_episodes, EPISODES), min(f.local_steps, 2)
    task = cfg.task
    kind = declared(task.registered(task.family).cls, "kind")
    if kind in ("reinforcement", "optimizer"):   # episodes or optimisation runs of task.horizon steps
        task.horizon = min(task.horizon, HORIZON)
    if kind == "optimizer":
        task.unroll = min(task.unroll, 5)
    if kind == "reinforcement":                 # task.shots counts episodes per task
        task.shots = min(task.shots, EPISODES)
        if task.queries is not None:
            task.queries = min(task.queries, EPISODES)
    return cfg
