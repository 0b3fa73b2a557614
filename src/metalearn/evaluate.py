"""Evaluation on held-out tasks: the query loss before adaptation and after 1, 2, 5, 10 inner
steps, each as a mean with a 95% confidence interval, for the meta-learned model and for the
pretrained transfer baseline of Finn et al. (2017) fine-tuned with the same inner steps.

Test tasks come from a fixed seed on a stream separate from training and validation, so every
run and every algorithm is scored on exactly the same tasks.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .algorithms.base import Algorithm
from .build import build_algorithm, build_tasks
from .config import Config
from .runs import Run, atomic_write_text, load_checkpoint, load_weights
from .seeding import generator
from .stats import mean_ci
from .train import Trainer


@dataclass
class CurveStats:
    """Mean and 95% CI half-width of the query loss after each number of inner steps."""

    steps: list[int]
    mean: list[float]
    ci: list[float]

    def at(self, step: int) -> tuple[float, float]:
        i = self.steps.index(step)
        return self.mean[i], self.ci[i]


@dataclass
class EvalResult:
    shots: int
    tasks: int
    seed: int
    metric: str
    methods: dict[str, CurveStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"shots": self.shots, "tasks": self.tasks, "seed": self.seed, "metric": self.metric,
                "methods": {k: vars(v) for k, v in self.methods.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalResult":
        return cls(d["shots"], d["tasks"], d["seed"], d["metric"],
                   {k: CurveStats(**v) for k, v in d["methods"].items()})

    def table(self) -> str:
        """A Markdown table: one row per method, one column per number of inner steps."""
        steps = next(iter(self.methods.values())).steps
        head = "| method | " + " | ".join("before" if s == 0 else f"{s} step{'s' * (s > 1)}" for s in steps) + " |"
        rule = "|---|" + "---:|" * len(steps)
        rows = [f"| {name} | " + " | ".join(f"{m:.3f} ± {c:.3f}" for m, c in zip(st.mean, st.ci)) + " |"
                for name, st in self.methods.items()]
        title = (f"Query {self.metric} on {self.tasks} held-out tasks, K={self.shots} "
                 f"(mean ± 95% CI, seed {self.seed})")
        return "\n".join([title, "", head, rule, *rows])


def curve_stats(algorithm: Algorithm, batch: Any, steps: list[int]) -> CurveStats:
    """Query loss statistics of ``algorithm`` on ``batch`` after each count in ``steps`` (0 = before)."""
    curve = algorithm.adaptation_curve(batch, max(steps))
    stats = [mean_ci(curve[:, s]) for s in steps]
    return CurveStats(list(steps), [m for m, _ in stats], [c for _, c in stats])


def load_algorithm(run: Run, cfg: Config | None = None, which: str = "best") -> Algorithm:
    """The algorithm of a run with the weights of its ``best`` (or ``last``) checkpoint."""
    cfg = cfg or run.load_config()
    algo = build_algorithm(cfg, build_tasks(cfg))
    path = run.find_checkpoint(which)
    load_weights(algo, load_checkpoint(path)["model"], path)
    return algo.eval()


def baseline_config(cfg: Config) -> Config:
    """The pretrained baseline's config: same task family, model, steps and meta-batch (so the
    same number of tasks seen), with joint training in place of the inner loop."""
    base = copy.deepcopy(cfg)
    base.algo.name = "pretrain"
    return base


def ensure_baseline(run: Run, cfg: Config, progress: bool = True) -> Algorithm:
    """Train (or finish training) the pretrained baseline in ``RUN/baseline``, then load it."""
    base_cfg = baseline_config(cfg)
    brun = Run(run.path / "baseline")
    done = False
    if brun.last_checkpoint.is_file():
        done = int(load_checkpoint(brun.last_checkpoint)["step"]) >= base_cfg.train.steps
    if not done:
        tasks = build_tasks(base_cfg)
        algo = build_algorithm(base_cfg, tasks)
        brun.save_config(base_cfg)
        t = base_cfg.train
        trainer = Trainer(algo, tasks, brun.path, steps=t.steps, meta_batch=t.meta_batch, lr=t.lr,
                          seed=t.seed, log_every=t.log_every, val_every=t.val_every,
                          val_tasks=t.val_tasks, ckpt_every=t.ckpt_every, device=t.device,
                          progress=progress, config=base_cfg.to_dict())
        trainer.run(resume=brun.last_checkpoint.is_file())
    return load_algorithm(brun, base_cfg)


def eval_path(run: Run, shots: int) -> Path:
    return run.path / "eval" / f"eval_k{shots}.json"


def evaluate_run(path: Path | str, shots: int | None = None, tasks: int | None = None,
                 steps: list[int] | None = None, baseline: bool = True,
                 progress: bool = True) -> EvalResult:
    """Evaluate the run at ``path`` (and its pretrained baseline) on fixed held-out tasks;
    saves ``eval/eval_k{K}.json`` and ``.md`` in the run folder."""
    run = Run.open(path)
    cfg = run.load_config()
    k = shots if shots is not None else cfg.task.shots
    n = tasks if tasks is not None else cfg.eval.tasks
    step_list = sorted({0, *(steps if steps is not None else cfg.eval.steps)})
    family = build_tasks(cfg, shots=k)
    batch = family.sample(n, generator("test", cfg.eval.seed))
    algo = load_algorithm(run, cfg)
    result = EvalResult(k, n, cfg.eval.seed, "mse" if family.loss == "mse" else family.loss)
    result.methods[cfg.algo.name if cfg.algo.mode == "second_order" else f"{cfg.algo.name} (first order)"] = \
        curve_stats(algo, batch.to(next(algo.parameters()).device), step_list)
    if baseline and cfg.algo.name != "pretrain":
        base = ensure_baseline(run, cfg, progress=progress)
        result.methods["pretrained baseline"] = curve_stats(base, batch, step_list)
    out = eval_path(run, k)
    atomic_write_text(out, json.dumps(result.to_dict(), indent=1))
    atomic_write_text(out.with_suffix(".md"), result.table() + "\n")
    return result


def load_eval(run: Run, shots: int) -> EvalResult | None:
    p = eval_path(run, shots)
    return EvalResult.from_dict(json.loads(p.read_text())) if p.is_file() else None
