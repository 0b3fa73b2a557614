"""Plots a person can look at, written as PNGs into ``RUN/report``, with a Markdown summary.

``training.png`` (the meta-training curve: training and validation loss, and the validation metric
when the family's is not the loss) is drawn for every run; the other pictures are the ones the
run's task family declares (``pictures``), by name:

* ``functions`` -> ``tasks.png``: held-out functions with the support points and the predictions
  before and after 1 and 10 inner steps, the meta-learned model beside the family's baseline
  (Finn et al. 2017, Figure 2);
* ``episode`` -> ``episode.png``: one test episode, support images with their labels and query
  images with predicted and true labels after adaptation;
* ``steps`` -> ``steps.png``: the query metric against the number of inner steps, with 95% CIs;
* ``loss_curves`` -> ``loss_curves.png``: a learned optimizer's loss curves beside the tuned
  hand-designed optimizers';
* ``support_size`` and ``forecasts``: grouped-table runs (:mod:`metalearn.report.groups`).
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, cast

import torch

from .._util.files import atomic_write_png, atomic_write_text
from .._util.seeding import generator
from ..algorithms import AdaptedPolicy, Algorithm
from ..config import Config
from ..errors import MetalearnError
from ..evaluation.baselines import baseline_is_trained, run_baseline, trained_baseline
from ..evaluation.registry import evaluate_run, evaluator_for
from ..integrations.mlflow import log_artifacts
from ..integrations.wandb import log_pictures
from ..protocols import EnvironmentFamily, Metric, Result, TaskFamily, declared
from ..runs import Run
from ..tasks import get_task_family
from ..training.build import build_tasks
from ..training.loading import load_algorithm
from .groups import plot_forecasts, plot_support_size


def _pyplot() -> Any:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MetalearnError("metalearn report needs matplotlib; install it with "
                             "pip install 'metalearn-torch[plot]'") from None
    return plt


def plot_training(run: Run, plt: Any, metric: Metric | None = None) -> Path:
    """Training and validation loss against meta-steps; beside them the validation ``metric``
    (``val_<metric.short>`` in the log) when it is not the loss."""
    rows = run.read_metrics()
    if not rows:
        raise MetalearnError(f"{run.metrics_path} has no rows yet; train for at least train.log_every steps")
    key = f"val_{metric.short}" if metric is not None and not metric.is_loss else None
    has_acc = key is not None and any(key in r for r in rows)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6.5, 4), squeeze=False)
    ax = axes[0][0]
    # a metric of the task loss (an episode's return) is logged for the training tasks too: draw it
    # before and after adaptation in place of the loss (a surrogate whose value says nothing)
    own = metric is not None and metric.key is not None and any(f"train_{metric.key}" in r for r in rows)
    curves = ((f"train_{metric.key}_before", "meta-training tasks, before adaptation"),
              (f"train_{metric.key}", "meta-training tasks, after adaptation")) if own and metric else (
        ("train_loss", "meta-training loss (query, after adaptation)"), ("val_loss", "validation loss (fixed tasks)"))
    for key_, label in curves:
        pts = [(r["step"], r[key_]) for r in rows if key_ in r]
        if pts:
            ax.plot(*zip(*pts), label=label, marker="." if key_ == "val_loss" else None)
    ax.set_xlabel("meta-step")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))   # a short run gets whole steps too
    ax.set_ylabel(metric.name if own and metric else "loss")
    if not own:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"Meta-training: {run.path.name}")
    if has_acc and metric is not None and key is not None:
        pts = [(r["step"], metric.scale * r[key]) for r in rows if key in r]
        axes[0][1].plot(*zip(*pts), marker=".", color="tab:green")
        axes[0][1].set_xlabel("meta-step")
        axes[0][1].xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        axes[0][1].set_ylabel(f"validation {metric.name} after adaptation")
        axes[0][1].grid(alpha=0.3)
    out = run.report_dir / "training.png"
    atomic_write_png(fig, out)
    plt.close(fig)
    return out


class CurveFamily(TaskFamily, Protocol):
    """What the ``functions`` picture needs: tasks with their true functions over ``x_range``."""

    shots: int
    x_range: tuple[float, float]

    def sample_with_truth(self, num_tasks: int, generator: torch.Generator | None = None) -> tuple[Any, Any]: ...


class RenderableFamily(EnvironmentFamily, Protocol):
    """What the ``clip`` picture needs: an environment family that renders an episode's frames."""

    def render_episode(self, policy: Any, task: torch.Tensor, steps: int | None = None, size: tuple[int, int] = ...,
                       seed: int = 0) -> list[Any]: ...


def plot_tasks(run: Run, plt: Any, models: dict[str, Any], family: CurveFamily, seed: int, num: int = 3) -> Path:
    """Held-out functions of a family that can draw them (``sample_with_truth``, ``x_range``)."""
    batch, truth = family.sample_with_truth(num, generator("report", seed))
    lo, hi = family.x_range
    xs = torch.linspace(lo, hi, 200).view(1, -1, 1)
    fig, axes = plt.subplots(len(models), num, figsize=(4.2 * num, 3.2 * len(models)), squeeze=False)
    for row, (name, algo) in enumerate(models.items()):
        for t in range(num):
            ax = axes[row][t]
            ax.plot(xs[0, :, 0], truth(xs)[t, :, 0], color="k", lw=2, label="true function")
            ax.scatter(batch.support_x[t, :, 0], batch.support_y[t, :, 0], color="tab:purple",
                       zorder=5, label=f"{family.shots} support points")
            for steps, style in ((0, ":"), (1, "--"), (10, "-")):
                learner = algo.adapt(batch.support_x[t], batch.support_y[t], steps=steps)
                label = "before adaptation" if steps == 0 else f"after {steps} step{'s' * (steps > 1)}"
                ax.plot(xs[0, :, 0], learner(xs[0])[:, 0], style, label=label)
            ax.set_title(f"{name}, task {t + 1}")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left")
    out = run.report_dir / "tasks.png"
    atomic_write_png(fig, out)
    plt.close(fig)
    return out


def plot_episode(run: Run, plt: Any, algo: Any, family: TaskFamily, seed: int, steps: int = 10) -> Path:
    """One test episode: support images (with labels) and query images (predicted vs true)."""
    batch = family.sample(1, generator("report", seed))
    xs, ys, xq, yq = batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.query_y[0]
    pred = algo.adapt(xs, ys, steps=steps)(xq).argmax(-1)
    cols = max(len(xs), min(len(xq), 20))
    show_q = min(len(xq), 2 * cols)
    rows = 1 + -(-show_q // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(len(xs)):
        axes[0][i].imshow(xs[i].permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
        axes[0][i].set_title(f"support {int(ys[i])}", fontsize=7)
    for j in range(show_q):
        ax = axes[1 + j // cols][j % cols]
        ax.imshow(xq[j].permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
        ok = bool(pred[j] == yq[j])
        ax.set_title(f"pred {int(pred[j])} / true {int(yq[j])}", fontsize=7, color="green" if ok else "red")
    fig.suptitle(f"A test episode after {steps} inner steps: {int((pred == yq).sum())}/{len(yq)} correct", fontsize=9)
    out = run.report_dir / "episode.png"
    atomic_write_png(fig, out)
    plt.close(fig)
    return out


def plot_steps(run: Run, plt: Any, result: Any) -> Path:
    """Query metric against inner steps with 95% CIs. Where tasks diverged, the curve is the mean
    over the others (the count is in the legend, the median dotted beside it), so that one
    diverged task does not draw a method's curve off the chart."""
    fig, ax = plt.subplots(figsize=(6, 4))
    # losses span decades: a log scale; scores (accuracies, returns, success rates) stay linear
    log = not result.higher_is_better and all(v > 0 for st in result.methods.values() for v in st.mean)
    for name, st in result.methods.items():
        if st.any_diverged:
            m, c = torch.tensor(st.mean_kept), torch.tensor(st.ci_kept)
            label = (f"{name}: mean without the {max(st.diverged)} of {result.tasks} tasks that diverged; "
                     f"mean over all {st.mean[-1]:.3g} after {st.steps[-1]} steps")
        else:
            m, c = torch.tensor(st.mean), torch.tensor(st.ci)
            label = name
        line, = ax.plot(st.steps, m, marker="o", label=label)
        # on a log scale a band reaching zero or below is cut at a tenth of the curve's lowest point;
        # a bounded score's band (a success rate, an accuracy) stays within the values it can take
        low, high = m - c, m + c
        if log:
            low = low.clamp(min=float(m.min()) / 10)
        elif result.bounds:
            low, high = low.clamp(min=result.bounds[0]), high.clamp(max=result.bounds[1])
        ax.fill_between(st.steps, low, high, alpha=0.25, color=line.get_color())
        if st.any_diverged and st.median:
            ax.plot(st.steps, st.median, ":", color=line.get_color(), label=f"{name}: median")
    if log:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))   # steps are whole numbers
    ax.set_xlabel("inner gradient steps on the support set")
    ax.set_ylabel(f"query {result.metric}")
    ax.set_title(f"K={result.shots}, {result.tasks} held-out tasks (95% CI)")
    ax.grid(alpha=0.3)
    # beside the axes, never over a curve (the picture is saved with a tight box)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    out = run.report_dir / "steps.png"
    atomic_write_png(fig, out)
    plt.close(fig)
    return out


@dataclass
class ReportContext:
    """What a picture may need; the algorithm and the families are built only when asked for."""

    run: Run
    cfg: Config
    plt: Any
    result: Result
    progress: bool

    @cached_property
    def algorithm(self) -> Algorithm:
        return load_algorithm(self.run, self.cfg)

    @cached_property
    def test_family(self) -> Any:
        return build_tasks(self.cfg, "test")


def _functions(ctx: ReportContext) -> Path:
    family = ctx.test_family
    models = {ctx.algorithm.label().upper(): ctx.algorithm}
    base = run_baseline(ctx.cfg, family)
    if base:   # drawn when evaluate trained it; report never trains
        baseline = trained_baseline(ctx.run, ctx.cfg, base)
        if baseline is not None:
            models[baseline.title] = baseline
        else:
            print(f"metalearn report: the tasks picture shows {ctx.algorithm.label()} without the {base} baseline, "
                  f"which was not trained (evaluate --no-baseline, or not evaluated yet); 'metalearn evaluate "
                  f"{ctx.run.path}' trains it and adds it", file=sys.stderr)
    return plot_tasks(ctx.run, ctx.plt, models, family, ctx.cfg.eval.seed)


def _episode(ctx: ReportContext) -> Path:
    return plot_episode(ctx.run, ctx.plt, ctx.algorithm, ctx.test_family, ctx.cfg.eval.seed,
                        steps=max(ctx.cfg.eval.steps))


def _forecasts(ctx: ReportContext) -> Path:
    return plot_forecasts(ctx.run, ctx.plt, ctx.algorithm, ctx.test_family, ctx.cfg.eval.seed,
                          steps=max(ctx.cfg.eval.steps), shots=ctx.cfg.task.shots)


@torch.no_grad()
def _mode_path(algo: Any, params: Any, family: EnvironmentFamily, task: torch.Tensor) -> torch.Tensor:
    """The positions visited taking the policy's most likely action at every step."""
    env = family.make_env(task.view(1, -1), 1)
    obs = env.reset([0])
    path = [obs[0, 0]]
    policy = AdaptedPolicy(algo.model, params, family)
    for _ in range(family.horizon):
        obs, _, done = env.step(policy(obs.float()))
        path.append(obs[0, 0])
        if bool(done.all()):
            break
    return torch.stack(path)[:, :2]


def plot_paths(run: Run, plt: Any, algo: Any, family: EnvironmentFamily, seed: int, num: int = 4,
               shown: int = 6) -> Path:
    """Paths of a point-navigation policy before and after one adaptation step on ``num`` held-out
    goals (the first two observation coordinates are the position), like Figure 4 of Finn et al."""
    tasks = family.sample_tasks(num, generator("report", seed))
    # shared axes: with equal aspect, panels of different extents would come out in different sizes
    fig, axes = plt.subplots(1, num, figsize=(3.6 * num, 3.7), squeeze=False, sharex=True, sharey=True)
    for i, ax in enumerate(axes[0]):
        episodes, adapted = algo.adaptation_episodes(family, tasks[i], steps=1, seed=seed + i)
        for data, params, color, label in ((episodes[0], algo.params(), "tab:blue", "before adaptation"),
                                           (episodes[1], adapted, "tab:red", "after 1 step")):
            for e in range(min(shown, data["obs"].shape[0])):
                live = data["mask"][e] > 0
                xy = data["obs"][e][live][:, :2]
                ax.plot(xy[:, 0], xy[:, 1], color=color, lw=0.6, alpha=0.35)
            xy = _mode_path(algo, params, family, tasks[i])
            ax.plot(xy[:, 0], xy[:, 1], color=color, lw=2.4, label=f"{label} (most likely actions)")
        ax.scatter([float(tasks[i][0])], [float(tasks[i][1])], marker="*", s=160, color="k", zorder=5, label="goal")
        ax.scatter([0.0], [0.0], marker="o", s=25, color="gray", zorder=5)
        ax.set_title(f"{family.describe_task(tasks[i])}: return {float(episodes[0]['return']):.1f} -> "
                     f"{float(episodes[1]['return']):.1f}", fontsize=8)
        ax.set_aspect("equal")   # with shared limits every panel gets the same box
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{run.path.name}: the path of the most likely actions (bold) and {shown} sampled paths (thin) "
                 f"per goal, before (blue) and after (red) one policy-gradient step")
    out = run.report_dir / "paths.png"
    atomic_write_png(fig, out)
    plt.close(fig)
    return out


def write_clip(run: Run, plt: Any, algo: Any, family: RenderableFamily, seed: int, frames: int = 150) -> Path:
    """A GIF of the policy adapted by one step to a held-out task (``report/clip.gif``); where
    offscreen rendering is not available, a picture of the message saying what to install."""
    task = family.sample_tasks(1, generator("report", seed))[0]
    policy = algo.adapt_policy(family, task, steps=1, seed=seed)
    try:
        images = family.render_episode(policy, task, steps=frames, seed=seed)
    except MetalearnError as exc:
        print(f"metalearn report: no clip: {exc}", file=sys.stderr)
        fig = plt.figure(figsize=(7, 1.6))
        fig.text(0.02, 0.5, f"No clip of the adapted policy: {exc}", wrap=True, fontsize=8, va="center")
        out = run.report_dir / "clip.png"
        atomic_write_png(fig, out)
        plt.close(fig)
        return out
    from PIL import Image
    out = run.report_dir / "clip.gif"
    tmp = out.with_name(out.name + ".tmp")
    pictures = [Image.fromarray(f) for f in images[::2]]
    pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=60, loop=0)
    tmp.replace(out)
    return out


# the pictures a family can declare, by name
PICTURES: dict[str, Callable[[ReportContext], Path]] = {
    "support_size": lambda ctx: plot_support_size(ctx.run, ctx.plt, cast(Any, ctx.result)),
    "forecasts": _forecasts,
    "functions": _functions,
    "episode": _episode,
    "steps": lambda ctx: plot_steps(ctx.run, ctx.plt, ctx.result),
    "paths": lambda ctx: plot_paths(ctx.run, ctx.plt, ctx.algorithm, ctx.test_family, ctx.cfg.eval.seed),
    "clip": lambda ctx: write_clip(ctx.run, ctx.plt, ctx.algorithm, ctx.test_family, ctx.cfg.eval.seed),
    "loss_curves": lambda ctx: plot_l2l(ctx.run, ctx.plt, ctx.result.to_dict()),
}


def make_report(path: Path | str, progress: bool = True) -> list[Path]:
    """Write the report of the run at ``path``: the training curve and the pictures its task
    family declares; runs the evaluation first if it is missing, never training a baseline
    (``metalearn evaluate`` does)."""
    plt = _pyplot()
    run = Run.open(path)
    cfg = run.load_config()
    run.check_writable("report")
    family_cls = get_task_family(cfg.task.family).cls
    evaluator = evaluator_for(cfg)
    result = evaluator.load(run, cfg)
    if result is None:   # evaluated now, with the baseline only if evaluate trained it: report never trains
        base = run_baseline(cfg, family_cls)
        with_base = base is not None and baseline_is_trained(run, cfg, base)
        if base and not with_base:
            print(f"metalearn report: the run is evaluated without its {base} baseline, which is not trained; "
                  f"'metalearn evaluate {run.path}' trains it and adds it", file=sys.stderr)
        result = evaluate_run(run.path, progress=progress, baseline=with_base)
    ctx = ReportContext(run, cfg, plt, result, progress)
    outs = [plot_training(run, plt, evaluator.curve_metric(cfg))]
    outs += [PICTURES[name](ctx) for name in declared(family_cls, "pictures", ("steps",))]
    summary = [f"# Report: {run.path.name}", "",
               f"Algorithm {cfg.algo.name} ({cfg.algo.mode}), task family {cfg.task.family} "
               f"({declared(family_cls, 'kind')}), {cfg.train.steps} meta-steps of {cfg.train.meta_batch} "
               f"tasks, seed {cfg.train.seed}.", "",
               result.table(), "", *[f"![{p.stem}]({p.name})" for p in outs], ""]
    atomic_write_text(run.report_dir / "summary.md", "\n".join(summary))
    if cfg.log.wandb:
        log_pictures(run.path, cfg.log.wandb_project, outs)
    if cfg.log.mlflow:
        log_artifacts(run.path, cfg.log.mlflow_uri, [*outs, run.report_dir / "summary.md"])
    return [*outs, run.report_dir / "summary.md"]


def plot_l2l(run: Run, plt: Any, report: dict[str, Any]) -> Path:
    """Draw a learned optimizer's loss curves beside the tuned hand-designed optimizers, one panel per
    evaluation variant, into the run's report folder.

    Args:
        run: the run folder.
        plt: ``matplotlib.pyplot``.
        report: the learned-optimizer evaluation (``eval/l2l.json``'s content).

    Returns:
        The path of the written picture.
    """
    variants = report["variants"]
    fig, axes = plt.subplots(1, len(variants), figsize=(4.3 * len(variants), 3.6), squeeze=False)
    for ax, (label, v) in zip(axes[0], variants.items()):
        for name, r in v["results"].items():
            ax.plot(r["curve"], label=name, lw=2.2 if name.startswith("LSTM") else 1.2)
        ax.set_yscale("log")
        ax.set_title(label)
        ax.set_xlabel("optimisation step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("loss (mean over problems)")
    axes[0][0].legend(fontsize=7)
    out = run.report_dir / "loss_curves.png"
    atomic_write_png(fig, out)
    plt.close(fig)
    return out
