"""Registry of evaluators by name, and :func:`evaluate_run`, which runs the one a run's task family
declares (``evaluator``). Adding a kind of evaluation is its module (a class implementing
:class:`~metalearn.evaluation.base.Evaluator`) plus one line here."""
from __future__ import annotations

from pathlib import Path

from .._util.registry import Registry
from ..config import Config
from ..protocols import Result, declared
from ..runs import Run
from ..tasks import get_task_family
from .adaptation import AdaptationEvaluator
from .base import EvalRequest, Evaluator
from .groups import GroupsEvaluator
from .optimizers import OptimizersEvaluator

_EVALUATORS: Registry[Evaluator] = Registry("evaluator")


def register_evaluator(evaluator: Evaluator) -> None:
    """Register ``evaluator`` under its ``name``, the value a task family declares as ``evaluator``."""
    _EVALUATORS.add(evaluator.name, evaluator)


register_evaluator(AdaptationEvaluator())
register_evaluator(GroupsEvaluator())
register_evaluator(OptimizersEvaluator())


def unregister_evaluator(name: str) -> None:
    """Remove the evaluator registered as ``name`` (tests and plug-ins that registered one)."""
    _EVALUATORS.remove(name)


def list_evaluators() -> list[str]:
    """The registered evaluator names, sorted (``adaptation``, ``groups``, ``optimizers``, ...)."""
    return _EVALUATORS.names()


def get_evaluator(name: str) -> Evaluator:
    """The evaluator registered as ``name``; an unknown name lists the valid ones."""
    return _EVALUATORS.get(name)


def evaluator_for(cfg: Config) -> Evaluator:
    """The evaluator that the task family of ``cfg`` declares (``adaptation`` when it declares none)."""
    return get_evaluator(declared(get_task_family(cfg.task.family).cls, "evaluator", "adaptation"))


def evaluate_run(path: Path | str, shots: int | None = None, tasks: int | None = None,
                 steps: list[int] | None = None, baseline: bool = True, progress: bool = True,
                 dataset: str | None = None, queries: int | None = None,
                 data_dir: str | None = None, checkpoint: str = "best", device: str = "cpu",
                 episodes: str | None = None) -> Result:
    """Evaluate the run at ``path`` on fixed held-out tasks with the evaluator its task family
    declares, and save the result in ``RUN/eval/``; the arguments are those of
    :class:`~metalearn.evaluation.base.EvalRequest` (None: the run's own settings).

    ``adaptation`` (:class:`~metalearn.evaluation.adaptation.AdaptationEvaluator`): the metric
    before and after each number of inner steps with 95% CIs, beside the family's baseline;
    ``groups``: per held-out group against pooled and per-group baselines; ``optimizers``: the
    learned optimizer against tuned hand-designed ones (``tasks`` problems), ``eval/l2l.json``.
    """
    run = Run.open(path)
    cfg = run.load_config()
    run.check_writable("eval")  # before minutes of work, not after
    request = EvalRequest(shots, tasks, steps, baseline, progress, dataset, queries, data_dir, checkpoint, device,
                          episodes)
    return evaluator_for(cfg).evaluate(run, cfg, request)


def load_result(run: Run, cfg: Config) -> Result | None:
    """The run's saved evaluation by the evaluator its family declares, or None."""
    return evaluator_for(cfg).load(run, cfg)
