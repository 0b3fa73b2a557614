"""What the report's pictures show, read from the matplotlib figures before they are written: the
steps legend beside the curves, bands within a score's bounds, path panels of one size, pruned
trials in a study's history, whole-number step ticks."""
import json

import pytest
import torch

plt = pytest.importorskip("matplotlib.pyplot")

from metalearn.evaluation.adaptation import EvalResult  # noqa: E402
from metalearn.runs import Run  # noqa: E402


@pytest.fixture
def figures(monkeypatch):
    """The figures the report would write, kept open instead."""
    import metalearn.report.figures as figs
    import metalearn.tune.study as study
    kept, close = [], plt.close

    def keep(fig, path):
        kept.append(fig)
    monkeypatch.setattr(figs, "atomic_write_png", keep)
    monkeypatch.setattr(study, "atomic_write_png", keep)
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    yield kept
    close("all")


def _extent(artist, fig):
    fig.canvas.draw()
    return artist.get_window_extent(fig.canvas.get_renderer())


def test_the_steps_legend_is_beside_the_curves_and_a_bounded_band_stays_in_bounds(figures, tmp_path):
    from metalearn.report.figures import plot_steps
    result = EvalResult(1, 40, 0, "success rate", [0, 1, 2], higher_is_better=True, bounds=[0.0, 1.0])
    gen = torch.Generator().manual_seed(0)
    curve = (torch.rand(40, 3, generator=gen) < torch.tensor([0.05, 0.9, 0.97])).double()   # near 0, near 1
    result.add("maml_trpo", curve, loss=False)
    plot_steps(Run(tmp_path), plt, result)
    fig = figures[-1]
    ax = fig.axes[0]
    assert _extent(ax.get_legend(), fig).x0 >= _extent(ax, fig).x1 - 1   # right of the axes, over no curve
    band = [c for c in ax.collections if c.get_paths()]
    ys = torch.cat([torch.as_tensor(p.vertices[:, 1]) for c in band for p in c.get_paths()])
    assert ys.min() >= 0.0 and ys.max() <= 1.0
    # the same curve without declared bounds: its band leaves [0, 1] (so the clamp above did the work)
    result.bounds = None
    plot_steps(Run(tmp_path), plt, result)
    ys = torch.cat([torch.as_tensor(p.vertices[:, 1]) for c in figures[-1].axes[0].collections
                    for p in c.get_paths()])
    assert ys.min() < 0.0 or ys.max() > 1.0


def test_a_short_run_gets_whole_step_ticks(figures, tmp_path):
    from metalearn.report.figures import plot_training
    run = Run(tmp_path)
    run.metrics_path.write_text("\n".join(json.dumps({"step": s, "train_loss": 1.0 / s, "val_loss": 2.0 / s})
                                          for s in (1, 2, 3)) + "\n")
    plot_training(run, plt)
    ax = figures[-1].axes[0]
    figures[-1].canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_the_navigation_panels_are_one_size(figures, tmp_path):
    from metalearn.config import apply_overrides, load_preset
    from metalearn.report.figures import plot_paths
    from metalearn.training.build import build_algorithm, build_tasks
    cfg = apply_overrides(load_preset("rl-nav2d"), ["task.horizon=6", "task.shots=2", "model.hidden=[8]"])
    family = build_tasks(cfg, "test")
    algo = build_algorithm(cfg, family)
    plot_paths(Run(tmp_path), plt, algo, family, seed=3, num=3, shown=2)
    fig = figures[-1]
    fig.canvas.draw()
    sizes = {(round(a.get_position().width, 4), round(a.get_position().height, 4)) for a in fig.axes}
    assert len(sizes) == 1, sizes


def test_the_history_of_a_study_shows_its_pruned_trials(figures, tmp_path):
    optuna = pytest.importorskip("optuna")
    from metalearn.tune.study import _plots
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study = optuna.create_study(direction="minimize")
    for i in range(4):
        study.add_trial(optuna.trial.create_trial(params={"x": i / 4}, distributions=dist, value=1.0 - i / 10,
                                                  intermediate_values={0: 2.0, 1: 1.0 - i / 10}))
    study.add_trial(optuna.trial.create_trial(params={"x": 0.9}, distributions=dist, state=optuna.trial.TrialState.PRUNED,
                                              intermediate_values={0: 3.0, 1: 2.5}))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    _plots(study, tmp_path, complete, higher=False)
    ax = figures[0].axes[0]
    pruned = [line for line in ax.get_lines() if "pruned" in str(line.get_label())]
    assert pruned and list(pruned[0].get_xdata()) == [4] and list(pruned[0].get_ydata()) == [2.5]
