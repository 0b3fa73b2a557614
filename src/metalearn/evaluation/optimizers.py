"""Evaluation of a learned optimizer against hand-designed ones, as in Andrychowicz et al. (2016):
SGD, SGD with Nesterov momentum, RMSprop and Adam, each with its learning rate tuned on a grid on
separate problems ("tuning" seed stream), then every optimizer runs on the same held-out problems
("test" stream). Reported: the loss after ``steps`` steps (mean and 95% CI over problems) and the
mean loss curves. For MNIST, the paper's generalisation checks run too: twice the training horizon,
40 hidden units, two hidden layers, and ReLU instead of sigmoid.
"""
from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from .._util.files import atomic_write_text
from .._util.seeding import generator
from ..algorithms import Algorithm
from ..config import Config
from ..config.short_mode import short_mode
from ..functional import InnerRule
from ..functional.rules import adam, nesterov, rmsprop, sgd
from ..protocols import Metric, OptimizeeFamily, declared
from ..runs import Run
from ..tasks import get_task_family
from ..tasks.optimizees.optimize import no_grad_rule, optimize
from ..training.build import build_tasks
from ..training.loading import load_algorithm
from .base import EvalRequest
from .stats import mean_ci, paired

# the hand-designed optimizers the learned one is compared with, by display name
HAND_RULES: dict[str, Callable[[float], InnerRule]] = {"SGD": sgd, "Nesterov": nesterov, "RMSprop": rmsprop,
                                                       "Adam": adam}

LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)


def _final(family: OptimizeeFamily, batch: Any, params: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return family.final_loss(params, batch.data)


def _next_lr(lr: float, up: bool) -> float:
    """The neighbour of ``lr`` on the 1-3-10 ladder (3e-4 -> 1e-3 up, -> 1e-4 down)."""
    threes = f"{lr:.0e}".startswith("3")
    factor = (10 / 3 if threes else 3) if up else (1 / 3 if threes else 0.3)
    return float(f"{lr * factor:.1e}")


def tune_lr(family: OptimizeeFamily, name: str, steps: int, problems: int, seed: int, max_extend: int = 4) -> float:
    """The learning rate with the lowest mean final loss on tuning problems: the grid ``LR_GRID``
    first; when the best is at an end of it, the search goes on past that end (1-3-10 steps, up to
    ``max_extend`` of them) while the loss still falls, so no baseline is held back by the grid."""
    batch = family.sample(problems, generator("tuning", seed))

    def score(lr: float) -> float:
        params, _ = optimize(family, batch, no_grad_rule(HAND_RULES[name](lr)), steps)
        value = _final(family, batch, params).mean().item()
        return value if math.isfinite(value) else math.inf

    scores = {lr: score(lr) for lr in LR_GRID}
    best_lr = min(scores, key=scores.__getitem__)
    for end, up in ((LR_GRID[-1], True), (LR_GRID[0], False)):
        lr = end
        for _ in range(max_extend if best_lr == lr else 0):
            lr = _next_lr(lr, up)
            scores[lr] = score(lr)
            if scores[lr] >= scores[best_lr]:
                break
            best_lr = lr
    return best_lr


def compare_optimizers(algo: Algorithm, family: OptimizeeFamily, steps: int, problems: int, tune_problems: int,
                       seed: int) -> dict[str, Any]:
    """Final loss (mean, CI) and mean curve of the learned and the tuned hand-designed optimizers,
    and for each hand-designed one the paired difference LSTM - it over the same problems."""
    test = family.sample(problems, generator("test", seed))
    results: dict[str, Any] = {}
    rules: dict[str, tuple[InnerRule, float | None]] = {"LSTM (learned)": (no_grad_rule(algo.inner_rule()), None)}
    for name in HAND_RULES:
        tuned = tune_lr(family, name, steps, tune_problems, seed)
        rules[name] = (no_grad_rule(HAND_RULES[name](tuned)), tuned)
    learned: torch.Tensor | None = None
    for name, (rule, lr) in rules.items():
        params, curve = optimize(family, test, rule, steps)
        final = _final(family, test, params)
        final = torch.where(torch.isfinite(final), final, torch.full_like(final, float("inf")))
        m, ci = mean_ci(final) if torch.isfinite(final).all() else (float("inf"), float("nan"))
        results[name] = {"lr": lr, "final_mean": m, "final_ci": ci,
                         "curve": curve.nan_to_num(float("inf")).mean(0).tolist()}
        if learned is None:
            learned = final
        elif torch.isfinite(final).all() and torch.isfinite(learned).all():
            d = paired(learned, final, better="lower")
            results[name]["lstm_minus"] = {"mean": d.mean, "ci": d.ci, "wins": d.wins, "losses": d.losses}
    return results


def generalisation_variants(cfg: Config) -> dict[str, tuple[Config, int]]:
    """The settings to evaluate on: as trained, twice the horizon, and the variants of the task
    section that the family declares (``variants``: for MNIST the paper's wider, deeper and ReLU
    networks). With ``METALEARN_SHORT=1``, the first alone."""
    steps = cfg.task.horizon
    out = {"as trained": (cfg, steps), f"{2 * steps} steps": (cfg, 2 * steps)}
    if short_mode():
        return {"as trained": out["as trained"]}
    for label, changes in declared(get_task_family(cfg.task.family).cls, "variants", ()):
        c = copy.deepcopy(cfg)
        for key, value in changes.items():
            setattr(c.task, key, value)
        out[label] = (c, steps)
    return out


@dataclass
class OptimizerComparison:
    """The evaluation of a learned-optimizer run: per setting, each optimizer's final loss (mean,
    CI, tuned learning rate) and mean loss curve."""

    report: dict[str, Any]
    path: Path | None = None

    def table(self) -> str:
        return l2l_table(self.report)

    def to_dict(self) -> dict[str, Any]:
        return self.report


def evaluate_optimizers(run: Run, cfg: Config, algo: Any, problems: int | None = None) -> OptimizerComparison:
    """All comparisons of a learned-optimizer run; saved as ``eval/l2l.json`` and ``.md``."""
    n = problems or cfg.eval.tasks
    report: dict[str, Any] = {"problems": n, "seed": cfg.eval.seed, "variants": {}}
    for label, (c, steps) in generalisation_variants(cfg).items():
        family = cast(OptimizeeFamily, build_tasks(c, horizon=steps))
        algo.family = family
        report["variants"][label] = {"steps": steps,
                                     "results": compare_optimizers(algo, family, steps, n, max(n // 2, 4),
                                                                   cfg.eval.seed)}
    out = run.path / "eval" / "l2l.json"
    atomic_write_text(out, json.dumps(report, indent=1))
    atomic_write_text(out.with_suffix(".md"), l2l_table(report) + "\n")
    return OptimizerComparison(report, out)


def load_comparison(run: Run) -> OptimizerComparison | None:
    """The learned-optimizer evaluation that ``evaluate`` wrote (``eval/l2l.json``), or None before it ran."""
    path = run.path / "eval" / "l2l.json"
    return OptimizerComparison(json.loads(path.read_text()), path) if path.is_file() else None


def l2l_table(report: dict[str, Any]) -> str:
    """The Markdown table of a learned-optimizer evaluation: final loss per setting and optimizer, mean and 95% CI."""
    lines = [f"Final loss on {report['problems']} held-out problems (mean ± 95% CI, seed {report['seed']}); "
             f"hand-designed optimizers with learning rates tuned on separate problems", "",
             "| setting | steps | " + " | ".join(next(iter(report["variants"].values()))["results"]) + " |",
             "|---|---:|" + "---:|" * len(next(iter(report["variants"].values()))["results"])]
    for label, v in report["variants"].items():
        cells = []
        for r in v["results"].values():
            lr = f" (lr {r['lr']:g})" if r["lr"] is not None else ""
            cells.append(f"{r['final_mean']:.3f} ± {r['final_ci']:.3f}{lr}" if math.isfinite(r["final_mean"])
                         else f"diverged{lr}")
        lines.append(f"| {label} | {v['steps']} | " + " | ".join(cells) + " |")
    others = [n for n, r in next(iter(report["variants"].values()))["results"].items() if r["lr"] is not None]
    lines += ["", f"Paired difference LSTM - optimizer on the same {report['problems']} problems (mean ± 95% CI of the "
                  f"per-problem differences; negative: the LSTM reaches a lower loss; problems won / lost by the LSTM)",
              "", "| setting | " + " | ".join(f"LSTM - {n}" for n in others) + " |", "|---|" + "---:|" * len(others)]
    for label, v in report["variants"].items():
        cells = []
        for n in others:
            d = v["results"][n].get("lstm_minus")
            cells.append("-" if d is None else f"{d['mean']:+.3f} ± {d['ci']:.3f} ({d['wins']}/{d['losses']})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class OptimizersEvaluator:
    """The ``optimizers`` evaluator: the learned optimizer against tuned hand-designed ones on
    ``request.tasks`` held-out problems (default ``eval.tasks``), saved as ``eval/l2l.json``."""

    name = "optimizers"

    def evaluate(self, run: Run, cfg: Config, request: EvalRequest) -> OptimizerComparison:
        return evaluate_optimizers(run, cfg, load_algorithm(run, cfg, request.checkpoint), problems=request.tasks)

    def load(self, run: Run, cfg: Config) -> OptimizerComparison | None:
        return load_comparison(run)

    def curve_metric(self, cfg: Config) -> Metric:
        metric: Metric = declared(get_task_family(cfg.task.family).cls, "metric")
        return metric
