"""Evaluation on held-out tasks: the query loss before adaptation and after 1, 2, 5, 10 inner
steps, each as a mean with a 95% confidence interval, for the meta-learned model and for the
pretrained transfer baseline of Finn et al. (2017) fine-tuned with the same inner steps.

Test tasks come from a fixed seed on a stream separate from training and validation, so every
run and every algorithm is scored on exactly the same tasks.
"""
from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._util.files import atomic_write_text
from .._util.progress import counted
from .._util.seeding import generator
from ..algorithms import Algorithm
from ..config import Config
from ..errors import ConfigError
from ..protocols import Metric, TaskFamily, declared
from ..runs import Run
from ..tasks import get_task_family
from ..training.build import build_algorithm, build_tasks, family_kind, test_ways
from ..training.loading import load_algorithm
from .base import EvalRequest
from .baselines import ensure_baseline, run_baseline
from .stats import mean_ci, paired

# a task has diverged after s inner steps when its query loss is not finite or is more than this
# many times its loss before adaptation (one task that does can rule the mean of a thousand)
DIVERGENCE_FACTOR = 10.0


def diverged_tasks(curve: Tensor, factor: float = DIVERGENCE_FACTOR) -> Tensor:
    """Boolean ``[tasks, steps + 1]``: the query loss of ``curve`` (losses after 0..S inner steps)
    is non-finite or over ``factor`` times the task's loss before adaptation."""
    return ~torch.isfinite(curve) | (curve > factor * curve[:, :1])


@dataclass
class CurveStats:
    """Mean, 95% CI half-width and median of the query loss after each number of inner steps;
    for losses also how many tasks diverged (see :func:`diverged_tasks`) and the mean and CI over
    the others."""

    steps: list[int]
    mean: list[float]
    ci: list[float]
    median: list[float] = field(default_factory=list)
    diverged: list[int] = field(default_factory=list)
    mean_kept: list[float] = field(default_factory=list)
    ci_kept: list[float] = field(default_factory=list)

    def at(self, step: int) -> tuple[float, float]:
        i = self.steps.index(step)
        return self.mean[i], self.ci[i]

    @property
    def any_diverged(self) -> bool:
        return any(self.diverged)

    @classmethod
    def from_curve(cls, curve: Tensor, loss: bool) -> CurveStats:
        """Statistics of a ``[tasks, steps + 1]`` curve; ``loss`` turns on divergence detection."""
        steps = list(range(curve.shape[1]))
        stats = [mean_ci(curve[:, s]) for s in steps]
        out = cls(steps, [m for m, _ in stats], [c for _, c in stats], curve.median(dim=0).values.tolist())
        if loss:
            bad = diverged_tasks(curve)
            out.diverged = bad.sum(0).tolist()
            kept = [mean_ci(curve[~bad[:, s], s]) if not bad[:, s].all() else (math.nan, math.nan)
                    for s in steps]
            out.mean_kept, out.ci_kept = [m for m, _ in kept], [c for _, c in kept]
        return out


def _score_name(metric: str) -> bool:
    """Whether a metric of an evaluation saved before ``higher_is_better`` was stored is a score."""
    return any(word in metric for word in ("accuracy", "return", "success"))


@dataclass
class EvalResult:
    """Statistics after every inner step 0..max; ``steps`` are the ones the table shows."""

    shots: int
    tasks: int
    seed: int
    metric: str
    steps: list[int]
    methods: dict[str, CurveStats] = field(default_factory=dict)

    dataset: str = ""
    path: Path | None = None      # where it was saved
    note: str = ""                # how the tasks were drawn, when that is not the family's default
    higher_is_better: bool = False  # a score (accuracy, return, success rate), not a loss
    bounds: list[float] | None = None  # the values a task's score can take, in the reported units
    # paired differences on the same tasks, e.g. {"maml - pretrained baseline": paired_curves(...)}
    paired: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    # each method's gain from adaptation on the same tasks: after s steps minus before (paired_curves)
    gain: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"shots": self.shots, "tasks": self.tasks, "seed": self.seed, "metric": self.metric,
                "steps": self.steps, "dataset": self.dataset, "paired": self.paired, "gain": self.gain,
                "note": self.note, "higher_is_better": self.higher_is_better, "bounds": self.bounds,
                "methods": {k: vars(v) for k, v in self.methods.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        return cls(d["shots"], d["tasks"], d["seed"], d["metric"], d["steps"],
                   {k: CurveStats(**v) for k, v in d["methods"].items()}, d.get("dataset", ""),
                   paired=d.get("paired", {}), gain=d.get("gain", {}), note=d.get("note", ""),
                   higher_is_better=d.get("higher_is_better", _score_name(d["metric"])), bounds=d.get("bounds"))

    def add(self, name: str, curve: Tensor, loss: bool) -> None:
        """Record a method's per-task curve ``[tasks, steps + 1]``: its statistics and its paired gain
        from adaptation (after each number of steps minus before, on the same tasks)."""
        self.methods[name] = CurveStats.from_curve(curve, loss=loss)
        self.gain[name] = paired_curves(curve, curve[:, :1].expand_as(curve), self.higher_is_better)

    def table(self) -> str:
        """A Markdown table: one row per method, one column per reported number of inner steps."""
        steps = self.steps
        head = "| method | " + " | ".join("before" if s == 0 else f"{s} step{'s' * (s > 1)}" for s in steps) + " |"
        rule = "|---|" + "---:|" * len(steps)
        rows = [f"| {name} | " + " | ".join("{:.3f} ± {:.3f}".format(*st.at(s)) for s in steps) + " |"
                for name, st in self.methods.items()]
        where = f" of {self.dataset}" if self.dataset else ""
        title = (f"Query {self.metric} on {self.tasks} held-out tasks{where}, K={self.shots} "
                 f"(mean ± 95% CI, seed {self.seed})")
        last = steps[-1]
        medians = "; ".join(f"{name} {st.median[st.steps.index(last)]:.3f}"
                            for name, st in self.methods.items() if st.median)
        lines = [title, *([self.note] if self.note else []), "", head, rule, *rows, "",
                 f"Median after {last} steps: {medians}"]
        for label, d in self.paired.items():
            lines += ["", f"Paired difference on the same {self.tasks} tasks, {label} (mean ± 95% CI; tasks won / "
                          f"lost by the first):", "", head, rule,
                      f"| {label} | " + " | ".join(
                          _paired_cell(d, s) for s in steps)
                      + " |"]
        after = [s for s in steps if s > 0]
        if self.gain and after:
            lines += ["", f"Gain from adaptation on the same {self.tasks} tasks, after minus before (mean ± 95% CI; "
                          f"tasks improved / worsened):", "",
                      "| method | " + " | ".join(f"{s} step{'s' * (s > 1)}" for s in after) + " |",
                      "|---|" + "---:|" * len(after)]
            lines += [f"| {name} | " + " | ".join(
                _paired_cell(d, s) for s in after) + " |"
                for name, d in self.gain.items()]
        diverging = {name: st for name, st in self.methods.items() if st.any_diverged}
        if diverging:
            lines += ["", f"Diverged tasks (query {self.metric} not finite or over {DIVERGENCE_FACTOR:g}x the "
                          f"task's value before adaptation): "
                      + "; ".join(f"{name} {st.diverged[st.steps.index(last)]} of {self.tasks} after {last} "
                                  f"steps" for name, st in diverging.items())
                      + ". Mean over the tasks that did not diverge (how many diverged):", "", head, rule]
            for name, st in diverging.items():
                cells = []
                for s in steps:
                    i = st.steps.index(s)
                    cells.append(f"{st.mean_kept[i]:.3f} ± {st.ci_kept[i]:.3f}"
                                 + (f" ({st.diverged[i]})" if st.diverged[i] else ""))
                lines.append(f"| {name}, without diverged tasks | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _paired_cell(d: dict[str, list[Any]], s: int) -> str:
    """A paired difference after ``s`` steps as a table cell: mean ± CI (won / lost)."""
    return f"{d['mean'][s]:+.3f} ± {d['ci'][s]:.3f} ({d['wins'][s]}/{d['losses'][s]})"


def curve_values(algorithm: Algorithm, family: TaskFamily, num_tasks: int, gen: torch.Generator,
                 max_steps: int, metric: Callable[[Tensor, Tensor], Tensor] | str | None = None,
                 chunk: int = 100, progress: bool = False, name: str = "") -> Tensor:
    """Query ``metric`` (default: the loss) of ``algorithm`` after 0..``max_steps`` inner steps on
    ``num_tasks`` tasks of ``family`` drawn from ``gen``, ``chunk`` tasks at a time (with a bar of
    the tasks scored when ``progress``): ``[num_tasks, max_steps + 1]``."""
    device = next(algorithm.parameters()).device
    parts = []
    with tqdm(total=num_tasks, disable=not progress, unit="task", leave=False, mininterval=0.5,
              dynamic_ncols=True, desc=f"scoring {name or algorithm.name}") as bar:
        for start in range(0, num_tasks, chunk):
            batch = family.sample(min(chunk, num_tasks - start), gen).to(device)
            parts.append(counted(functools.partial(algorithm.adaptation_curve, batch, max_steps, metric=metric),
                                 batch.num_tasks, bar).cpu())
    return torch.cat(parts)


def paired_curves(a: Tensor, b: Tensor, higher_is_better: bool) -> dict[str, list[float | int]]:
    """Per number of inner steps, the paired difference ``a - b`` of two methods' curves on the same
    tasks (:func:`~metalearn.evaluation.stats.paired`), as lists."""
    rows = [paired(a[:, s], b[:, s], "higher" if higher_is_better else "lower") for s in range(a.shape[1])]
    return {"mean": [r.mean for r in rows], "ci": [r.ci for r in rows], "wins": [r.wins for r in rows],
            "losses": [r.losses for r in rows], "ties": [r.ties for r in rows]}


def eval_path(run: Run, shots: int, dataset: str | None = None, checkpoint: str | None = None) -> Path:
    """``eval/eval[_DATASET]_kK[_CHECKPOINT].json``"""
    name = "eval" + (f"_{dataset}" if dataset else "") + f"_k{shots}" + (f"_{checkpoint}" if checkpoint else "")
    return run.path / "eval" / f"{name}.json"


def metric_fn(metric: Metric) -> Callable[[Tensor, Tensor], Tensor] | None:
    """The per-task function that evaluation reports (scaled, e.g. to percent); None: the loss."""
    if metric.fn is None:
        return None
    fn, factor = metric.fn, metric.scale
    return fn if factor == 1 else (lambda out, target: fn(out, target) * factor)


class AdaptationEvaluator:
    """The ``adaptation`` evaluator: the family's metric before and after each number of inner
    steps, with 95% CIs, beside the family's baseline (trained on first use), saved as
    ``eval/eval_*.json`` and ``.md``. ``request.dataset`` tests on another family of the same kind
    (e.g. ``mnist``: a model meta-trained on Omniglot, tested on all ten MNIST test digits);
    ``request.device`` runs the adaptation there (the tasks are the same on every device);
    ``request.episodes`` overrides ``task.episodes`` (e.g. ``within_alphabet``, saved as
    ``eval/eval_FAMILY_within_alphabet_kK.json``)."""

    name = "adaptation"

    def evaluate(self, run: Run, cfg: Config, request: EvalRequest) -> EvalResult:
        r = request
        return _evaluate_adaptation(run, cfg, r.shots, r.tasks, r.steps, r.baseline, r.progress, r.dataset,
                                    r.queries, r.data_dir, r.checkpoint, r.device, r.episodes)

    def load(self, run: Run, cfg: Config) -> EvalResult | None:
        return load_eval(run, cfg.task.shots)

    def curve_metric(self, cfg: Config) -> Metric:
        metric: Metric = declared(get_task_family(cfg.task.family).cls, "metric")
        return metric


def _evaluate_adaptation(run: Run, cfg: Config, shots: int | None, tasks: int | None, steps: list[int] | None,
                         baseline: bool, progress: bool, dataset: str | None, queries: int | None,
                         data_dir: str | None, checkpoint: str, device: str, episodes: str | None = None
                         ) -> EvalResult:
    k = shots if shots is not None else cfg.task.shots
    n = tasks if tasks is not None else cfg.eval.tasks
    step_list = sorted({0, *(steps if steps is not None else cfg.eval.steps)})
    test_cfg = copy.deepcopy(cfg)
    if data_dir is not None:
        test_cfg.task.data_dir = data_dir
    family_name = dataset or cfg.task.family
    kind, test_kind = family_kind(cfg), declared(get_task_family(family_name).cls, "kind")
    if test_kind != kind:
        raise ConfigError(f"a {cfg.task.family} run ({kind}) cannot be tested on {family_name} ({test_kind}); "
                          f"test it on a family of the same kind")
    q = queries if queries is not None else cfg.eval.queries
    test_cfg.task.ways = test_ways(cfg)
    if episodes is not None:
        test_cfg.task.episodes = episodes
    family = build_tasks(test_cfg, "test", shots=k, queries=q, family=family_name)
    algo = load_algorithm(run, cfg, checkpoint).to(device)
    metric = family.metric
    # scored by a function of outputs and targets, by the name of a task-loss metric (an episode's
    # return), or by the loss
    fn: Any = metric.key if metric.key is not None else metric_fn(metric)
    grouped = test_cfg.task.episodes != "random"
    result = EvalResult(k, n, cfg.eval.seed, metric.name, step_list, dataset=family_name,
                        higher_is_better=metric.higher_is_better,
                        bounds=[b * metric.scale for b in metric.bounds] if metric.bounds else None,
                        note=family.describe() if grouped and hasattr(family, "describe") else "")
    ours = curve_values(algo, family, n, generator("test", cfg.eval.seed), max(step_list), fn,
                        progress=progress, name=algo.label())
    result.add(algo.label(), ours, metric.is_loss)
    base_name = run_baseline(cfg, family)
    others: list[Algorithm] = []
    if baseline and base_name:
        others.append(ensure_baseline(run, cfg, base_name, progress=progress).to(device))
    if baseline and declared(family, "scratch_baseline", False):
        # the same policy (network) at its random initialisation, adapted with the same steps
        others.append(build_algorithm(cfg, family).to(device).eval().retitled("random-init baseline"))
    for base in others:
        theirs = curve_values(base, family, n, generator("test", cfg.eval.seed), max(step_list), fn,
                              progress=progress, name=base.title)
        result.add(base.title, theirs, metric.is_loss)
        result.paired[f"{algo.label()} - {base.title}"] = paired_curves(ours, theirs, result.higher_is_better)
    label = family_name if family_name != cfg.task.family or grouped else None
    if grouped:
        label = f"{label}_{test_cfg.task.episodes}"
    out = eval_path(run, k, label,
                    None if checkpoint == "best" else checkpoint)
    atomic_write_text(out, json.dumps(result.to_dict(), indent=1))
    atomic_write_text(out.with_suffix(".md"), result.table() + "\n")
    result.path = out
    return result


def load_eval(run: Run, shots: int) -> EvalResult | None:
    """The adaptation evaluation that ``evaluate`` wrote for ``shots`` support examples, if any.

    Args:
        run: the run folder.
        shots: the support size of the evaluation (``eval/eval_k{shots}.json``).

    Returns:
        The :class:`EvalResult`, or None when the run has not been evaluated with that many shots.
    """
    p = eval_path(run, shots)
    return EvalResult.from_dict(json.loads(p.read_text())) if p.is_file() else None
