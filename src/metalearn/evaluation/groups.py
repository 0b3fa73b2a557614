"""Evaluation of grouped-table runs the way a practitioner reads it: per held-out group (a new
patient), the error of every method after seeing ``k`` of that group's rows, for several ``k``.

Methods, all scored on exactly the same support and query rows of the same test groups:

* the family's own reference forecasts (``domain_baselines``: persistence for glucose, a
  population pharmacokinetic model fitted to the patient for drug levels);
* ridge regression (autoregressive when the inputs are lagged readings) pooled over the
  meta-training groups, fitted on the group's support rows alone, and fitted on them with its
  weights shrunk toward the pooled ones; the ridge penalties are chosen on the validation groups;
* the same MLP as the meta-learned model: pooled (the family's ``baseline`` run, trained jointly
  on all meta-training rows), trained on the support rows alone from a random initialisation
  (Adam), and pooled then fine-tuned on the support rows; step counts chosen on the validation
  groups;
* the meta-learned model before adaptation, after each of ``eval.steps`` inner steps, and after
  the number of steps (up to the largest of ``eval.steps``) that does best on the validation groups.

For every support size: the mean over groups with its 95% CI and SD, the paired difference of each
method to the best baseline (the one with the best mean) with its 95% CI, and the share of groups
on which the method beats it; a breakdown by stratum (cohort); and the error against the support
size. Support rows are redrawn ``repeats`` times per group where the protocol draws them at random
(a group's score is the mean over draws), so groups, not draws, are the unit of the CI.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._util.files import atomic_write_text
from .._util.warn_once import warn_once
from ..algorithms import Algorithm, get_spec
from ..config import Config
from ..config.short_mode import INNER, capped
from ..data.tables import Group
from ..errors import ConfigError, DataError
from ..models import fit_ridge, predict_ridge
from ..protocols import Metric, TaskFamily
from ..runs import Run
from ..tasks import get_task_family
from ..training.build import build_model, build_tasks
from ..training.loading import load_algorithm
from .base import EvalRequest
from .baselines import ensure_baseline, run_baseline
from .stats import mean_ci, paired


class GroupedFamily(Protocol):
    """What this evaluator reads from a grouped-table family (:class:`metalearn.protocols.TaskFamily`
    plus its groups and their row protocol)."""

    name: str
    loss: str
    metric: Metric
    encoder: Any
    spec: Any
    support_until: float | None
    own_baseline: str
    units: str
    all_groups: Sequence[Group]
    train_groups: Sequence[Group]

    def can_evaluate(self, g: Group, shots: int) -> bool: ...
    def split_for_eval(self, g: Group, shots: int, gen: torch.Generator | None) -> tuple[Tensor, Tensor]: ...
    def task(self, g: Group, support: Tensor, query: Tensor) -> Any: ...
    def domain_baselines(self) -> dict[str, Callable[[Group, Tensor, Tensor], np.ndarray]]: ...
    def describe(self) -> str: ...


LAMBDAS = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
OWN_MLP_STEPS = 300          # Adam steps of the own-data MLP (the best count is chosen on validation)
OWN_MLP_LR = 3e-3


@dataclass
class GroupEvaluation:
    """Per-group scores of every method at every support size, and the tables built from them."""

    family: str
    metric: str
    higher_is_better: bool
    sizes: list[int]
    groups: list[str]
    strata: list[str]
    repeats: int
    seed: int
    scores: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # method -> str(k) -> per group
    baselines: list[str] = field(default_factory=list)   # which methods are baselines
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)  # str(k) -> what validation chose
    note: str = ""
    skipped: dict[str, int] = field(default_factory=dict)   # held-out groups too small to score: name -> rows
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d.pop("path")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GroupEvaluation:
        return cls(**d)

    def values(self, method: str, k: int) -> Tensor:
        return torch.tensor(self.scores[method][str(k)], dtype=torch.float64)

    def best_baseline(self, k: int) -> str:
        means = {m: float(self.values(m, k).mean()) for m in self.baselines if str(k) in self.scores[m]}
        pick = max if self.higher_is_better else min
        return pick(means, key=lambda m: means[m])

    def table(self) -> str:
        better = "higher" if self.higher_is_better else "lower"
        n = len(self.groups)
        lines = [f"{self.family}: {self.metric} on {n} held-out groups ({better} is better), mean ± 95% CI over "
                 f"groups and SD; support rows drawn {self.repeats} times per group where drawn at random "
                 f"(seed {self.seed})", *([self.note] if self.note else [])]
        if self.skipped:
            lines.append(_skipped_text(self.skipped, len(self.groups) + len(self.skipped), max(self.sizes)))
        for k in self.sizes:
            best = self.best_baseline(k)
            b = self.values(best, k)
            lines += ["", f"Support k = {k} rows per group. Best baseline: {best}.", "",
                      f"| method | {self.metric} | SD | difference to the best baseline | groups where it beats it |",
                      "|---|---:|---:|---:|---:|"]
            for m in self.scores:
                if str(k) not in self.scores[m]:
                    continue
                v = self.values(m, k)
                mean, ci = mean_ci(v)
                sd = float(v.std(unbiased=True)) if len(v) > 1 else math.nan
                if m == best:
                    diff, share = "(reference)", ""
                else:
                    p = paired(v, b, better)
                    diff, share = f"{p.mean:+.2f} ± {p.ci:.2f}", f"{p.wins}/{p.n}"
                lines.append(f"| {m} | {mean:.2f} ± {ci:.2f} | {sd:.2f} | {diff} | {share} |")
            chosen = self.chosen.get(str(k), {})
            if chosen:
                lines += ["", "Chosen on the validation groups: " + ", ".join(f"{a} {b:g}" for a, b in chosen.items())]
        strata = sorted(set(self.strata) - {""})
        if len(strata) > 1:
            k = self.sizes[-1]
            lines += ["", f"By stratum (k = {k}), mean over the groups of each:", "",
                      "| method | " + " | ".join(f"{s} ({self.strata.count(s)})" for s in strata) + " |",
                      "|---|" + "---:|" * len(strata)]
            for m in self.scores:
                if str(k) not in self.scores[m]:
                    continue
                v = self.values(m, k)
                cells = [f"{float(v[[i for i, st in enumerate(self.strata) if st == s]].mean()):.2f}" for s in strata]
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
        if len(self.sizes) > 1:
            lines += ["", f"{self.metric} against the support size (mean over groups):", "",
                      "| method | " + " | ".join(f"k = {k}" for k in self.sizes) + " |",
                      "|---|" + "---:|" * len(self.sizes)]
            for m in self.scores:
                cells = [f"{float(self.values(m, k).mean()):.2f}" if str(k) in self.scores[m] else ""
                         for k in self.sizes]
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _skipped_text(skipped: dict[str, int], total: int, k: int, split: str = "held-out") -> str:
    listed = ", ".join(f"{n!r} ({r} rows)" for n, r in list(skipped.items())[:8]) + (", ..." if len(skipped) > 8
                                                                                    else "")
    return (f"{len(skipped)} of {total} {split} groups have too few rows for k = {k} support rows and a query row "
            f"and are left out, as in training: {listed}")


def _evaluable(family: GroupedFamily, sizes: Sequence[int], split: str) -> tuple[list[Group], dict[str, int]]:
    """The groups of ``family`` that every support size leaves a query row in, and the others
    (name -> rows), said once; a DataError when none is left."""
    keep = [g for g in family.all_groups if all(family.can_evaluate(g, k) for k in sizes)]
    skipped = {g.name: len(g) for g in family.all_groups if g not in keep}
    if skipped:
        text = _skipped_text(skipped, len(family.all_groups), max(sizes), split)
        if not keep:
            raise DataError(f"{text}; none is left: use smaller eval.support_sizes (--set eval.support_sizes=[...])")
        warn_once(text)
    return keep, skipped


def _seeded(seed: int, *parts: int) -> torch.Generator:
    s = seed
    for p in parts:
        s = (s * 1_000_003 + p) % (2**62)
    return torch.Generator().manual_seed(s)


class _Scorer:
    """Scores of predictions for one family, in the units its metric reports."""

    def __init__(self, family: GroupedFamily) -> None:
        self.family = family
        if family.metric.fn is None:
            raise ConfigError(f"{family.name}: the groups evaluator needs a metric function")
        self.fn: Callable[[Tensor, Tensor], Tensor] = family.metric.fn
        self.scale = family.metric.scale

    def model(self, algo: Algorithm, batch: Any, steps: int) -> Tensor:
        """``[steps + 1]``: the metric after 0..steps inner steps of ``algo`` on a one-task batch."""
        return algo.adaptation_curve(batch, steps, metric=self.fn)[0].double() * self.scale

    def linear(self, w: Tensor, g: Group, q: Tensor) -> float:
        pred = predict_ridge(w, g.x[q])
        return float(self.fn(pred.float()[:, None], g.y[q])) * self.scale

    def absolute(self, pred: np.ndarray, g: Group, q: Tensor) -> float:
        truth = self.family.encoder.to_target(g.y[q], g.frame.iloc[q.numpy()])
        return float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64) - truth) ** 2)))


def _tune_ridge(scorer: _Scorer, groups: Sequence[Group], draws: list[list[tuple[Tensor, Tensor]]],
                prior: Tensor | None, higher: bool) -> float:
    """The ridge penalty (of :data:`LAMBDAS`) with the best mean score on ``groups``' draws, for a
    ridge fitted on the support rows (shrunk toward ``prior`` when given)."""
    scores = {lam: float(np.mean([np.mean([scorer.linear(fit_ridge(g.x[s], g.y[s], lam, prior), g, q)
                                           for s, q in d]) for g, d in zip(groups, draws)]))
              for lam in LAMBDAS}
    return float(_pick(scores, higher))


def _pick(values: dict[Any, float], higher: bool) -> Any:
    return (max if higher else min)(values, key=lambda key: values[key])


@dataclass
class _Chosen:
    """What the validation groups chose for one support size: the steps of the own MLP, of the
    pooled MLP's fine-tuning and of the meta-learned model, and the ridge penalties (``shown``:
    all of it as the table prints it)."""

    own_steps: int
    ft_steps: int
    meta_steps: int
    shown: dict[str, Any]


class _GroupScoring:
    """Everything :func:`evaluate_groups` scores with, built once: the test and validation families,
    the methods (the meta-learned model, the pooled and own-data MLPs, the ridges) and their scorers."""

    def __init__(self, cfg: Config, algo: Algorithm, pooled: Algorithm | None, reps: int,
                 step_list: list[int], sizes: Sequence[int]) -> None:
        self.cfg, self.algo, self.pooled, self.reps = cfg, algo, pooled, reps
        self.test = cast(GroupedFamily, build_tasks(cfg, "test"))
        self.val = cast(GroupedFamily, build_tasks(cfg, "validation"))
        # groups too small for a support size and a query row are left out, as training leaves them
        self.test_groups, self.skipped = _evaluable(self.test, sizes, "test")
        self.val_groups, _ = _evaluable(self.val, sizes, "validation")
        self.step_list, self.max_steps = step_list, max(step_list, default=0)
        test, val = self.test, self.val
        self.regression = not test.encoder.classification
        self.higher = test.metric.higher_is_better
        own_spec = get_spec(test.own_baseline)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed + 1)
            own_model = build_model(cfg, cast(TaskFamily, test))
        self.own = cast(Any, own_spec.cls)(own_model, inner_lr=OWN_MLP_LR, inner_steps=OWN_MLP_STEPS,
                                           loss=test.loss).eval()
        self.scorer, self.val_scorer = _Scorer(test), _Scorer(val)
        self.domain = test.domain_baselines()
        self.w_pool: Tensor | None = None
        self.lam_pool: float | None = None
        if self.regression:  # the pooled ridge's penalty: the best on the validation groups' every row
            train_x = torch.cat([g.x for g in test.train_groups])
            train_y = torch.cat([g.y for g in test.train_groups])
            fits = {lam: fit_ridge(train_x, train_y, lam) for lam in LAMBDAS}
            val_err = {lam: float(np.mean([self.val_scorer.linear(w, g, torch.arange(len(g)))
                                           for g in self.val_groups]))
                       for lam, w in fits.items()}
            self.lam_pool = _pick(val_err, self.higher)
            self.w_pool = fits[self.lam_pool]

    def draws(self, family: GroupedFamily, groups: Sequence[Group], k: int, n: int,
              salt: int) -> list[list[tuple[Tensor, Tensor]]]:
        """``n`` support/query draws of ``k`` support rows per group (one where the split is fixed by time)."""
        deterministic = family.support_until is None and family.spec.time is not None
        return [[family.split_for_eval(g, k, _seeded(self.cfg.eval.seed + salt, gi, k, r))
                 for r in range(1 if deterministic else n)] for gi, g in enumerate(groups)]

    def _best_steps(self, algo: Algorithm, batches: list[list[Any]], steps: int) -> int:
        curve = torch.stack([torch.stack([self.val_scorer.model(algo, b, steps) for b in bs]).mean(0)
                             for bs in batches]).mean(0)
        return int(curve.argmax() if self.higher else curve.argmin())

    def choose(self, k: int) -> _Chosen:
        """Choices on the validation groups: ridge penalties, step counts of the own and fine-tuned MLPs."""
        val, algo = self.val, self.algo
        vdraws = self.draws(val, self.val_groups, k, min(self.reps, 3), salt=7919)
        vbatches = [[val.task(g, s, q) for s, q in d] for g, d in zip(self.val_groups, vdraws)]
        own_steps = self._best_steps(self.own, vbatches, capped(OWN_MLP_STEPS, INNER))   # METALEARN_SHORT=1: 2
        shown: dict[str, Any] = {"own MLP steps": own_steps}
        ft_steps = 0
        if self.pooled is not None:
            ft_steps = self._best_steps(self.pooled, vbatches, max(self.max_steps, 10))
            shown["fine-tuning steps"] = ft_steps
        meta_steps = 0
        if algo.gradient_based and self.max_steps > 0:
            meta_steps = self._best_steps(algo, vbatches, self.max_steps)
            shown[f"{algo.label()} steps"] = meta_steps
        if self.regression and self.w_pool is not None:
            lam_own = _tune_ridge(self.val_scorer, self.val_groups, vdraws, None, self.higher)
            lam_ad = _tune_ridge(self.val_scorer, self.val_groups, vdraws, self.w_pool, self.higher)
            shown.update({"pooled ridge penalty": self.lam_pool, "own ridge penalty": lam_own,
                          "adapted ridge penalty": lam_ad})
        return _Chosen(own_steps, ft_steps, meta_steps, shown)

    def score_group(self, gi: int, g: Group, k: int, chosen: _Chosen) -> dict[str, list[float]]:
        """Every method's score on each draw of ``k`` support rows of the test group ``g``."""
        rows: dict[str, list[float]] = {}

        def add(name: str, value: float) -> None:
            rows.setdefault(name, []).append(value)

        test, scorer, label = self.test, self.scorer, self.algo.label()
        for s, q in self.draws(test, [g], k, self.reps, salt=gi * 104729)[0]:
            batch = test.task(g, s, q)
            for name, fn in self.domain.items():
                add(name, scorer.absolute(fn(g, s, q), g, q))
            if self.w_pool is not None:
                add("ridge, pooled", scorer.linear(self.w_pool, g, q))
                add("ridge, own data", scorer.linear(fit_ridge(g.x[s], g.y[s], chosen.shown["own ridge penalty"]),
                                                     g, q))
                add("ridge, pooled then adapted",
                    scorer.linear(fit_ridge(g.x[s], g.y[s], chosen.shown["adapted ridge penalty"], self.w_pool), g, q))
            if self.pooled is not None:
                curve = scorer.model(self.pooled, batch, chosen.ft_steps)
                add("MLP, pooled", float(curve[0]))
                add("MLP, pooled then fine-tuned", float(curve[-1]))
            add("MLP, own data", float(scorer.model(self.own, batch, chosen.own_steps)[-1]))
            if not self.algo.gradient_based:   # adapts without steps (ProtoNets' prototypes)
                add(f"{label}, adapted", float(scorer.model(self.algo, batch, 0)[0]))
                continue
            curve = scorer.model(self.algo, batch, self.max_steps)
            add(f"{label}, before adaptation", float(curve[0]))
            for st in self.step_list:
                add(f"{label}, after {st} step{'s' * (st > 1)}", float(curve[st]))
            add(f"{label}, adapted (steps chosen on validation)", float(curve[chosen.meta_steps]))
        return rows


def evaluate_groups(run: Run, cfg: Config, algo: Algorithm, pooled: Algorithm | None,
                    sizes: list[int] | None = None, repeats: int | None = None, steps: list[int] | None = None,
                    progress: bool = True) -> GroupEvaluation:
    """Score ``algo`` (and ``pooled``, the family's jointly trained baseline) with every method of
    the module docstring on the held-out groups, and save ``eval/groups.json`` and ``.md``."""
    sizes = sorted(set(sizes or cfg.eval.support_sizes or [cfg.task.shots]))
    if any(k <= 0 for k in sizes):
        raise ConfigError(f"support sizes must be positive, got {sizes}")
    reps = repeats if repeats is not None else cfg.eval.repeats
    if reps <= 0:
        raise ConfigError(f"eval.repeats must be positive, got {reps}")
    step_list = sorted(set(steps if steps is not None else cfg.eval.steps) - {0})
    scoring = _GroupScoring(cfg, algo, pooled, reps, step_list, sizes)
    test, groups = scoring.test, scoring.test_groups
    result = GroupEvaluation(test.name, test.metric.name, scoring.higher, sizes, [g.name for g in groups],
                             [g.stratum for g in groups], reps, cfg.eval.seed, note=test.describe(),
                             skipped=scoring.skipped)
    bar = tqdm(total=len(sizes) * len(groups), desc="groups", unit="group", leave=False,
               disable=not progress)
    for k in sizes:
        key = str(k)
        chosen = scoring.choose(k)
        result.chosen[key] = chosen.shown
        per: dict[str, list[float]] = {}
        for gi, g in enumerate(groups):
            for name, vals in scoring.score_group(gi, g, k, chosen).items():
                per.setdefault(name, []).append(float(np.mean(vals)))
            bar.update(1)
        for name, vals in per.items():
            result.scores.setdefault(name, {})[key] = vals
            if not name.startswith(f"{algo.label()},") and name not in result.baselines:
                result.baselines.append(name)
    bar.close()
    out = run.path / "eval" / "groups.json"
    atomic_write_text(out, json.dumps(result.to_dict(), indent=1))
    atomic_write_text(out.with_suffix(".md"), result.table() + "\n")
    result.path = out
    return result


def load_groups_eval(run: Run) -> GroupEvaluation | None:
    """The grouped-table evaluation that ``evaluate`` wrote (``eval/groups.json``), or None.

    Args:
        run: the run folder.

    Returns:
        The :class:`GroupEvaluation`, or None before the run is evaluated.
    """
    p = run.path / "eval" / "groups.json"
    return GroupEvaluation.from_dict(json.loads(p.read_text())) if p.is_file() else None



class GroupsEvaluator:
    """The ``groups`` evaluator: every method of the module docstring on the held-out groups,
    beside the family's pooled baseline (trained on first use), saved as ``eval/groups.json``."""

    name = "groups"

    def evaluate(self, run: Run, cfg: Config, request: EvalRequest) -> GroupEvaluation:
        algo = load_algorithm(run, cfg, request.checkpoint)
        base_name = run_baseline(cfg, get_task_family(cfg.task.family).cls)
        pooled = (ensure_baseline(run, cfg, base_name, progress=request.progress)
                  if request.baseline and base_name else None)
        return evaluate_groups(run, cfg, algo, pooled, sizes=[request.shots] if request.shots else None,
                               steps=request.steps, progress=request.progress)

    def load(self, run: Run, cfg: Config) -> GroupEvaluation | None:
        return load_groups_eval(run)

    def curve_metric(self, cfg: Config) -> Metric:
        # a grouped table's metric is in its target's units, which only the built family knows
        metric: Metric = build_tasks(cfg, "test").metric
        return metric
