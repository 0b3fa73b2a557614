"""The steps plot puts losses on a log scale and scores (returns, accuracies, success rates) on a
linear one, whatever their sign, and an evaluation keeps which kind its metric is."""
import pytest
import torch

from metalearn.evaluation.adaptation import CurveStats, EvalResult
from metalearn.runs import Run


def drawn_scale(tmp_path, metric, higher_is_better, monkeypatch):
    pytest.importorskip("matplotlib")
    from metalearn.report.figures import _pyplot, plot_steps
    plt = _pyplot()
    scales = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (scales.append(fig.axes[0].get_yscale()), close(fig)))
    curve = 2.0 + torch.rand(30, 4, generator=torch.Generator().manual_seed(0))   # every mean > 0
    st = CurveStats.from_curve(curve, loss=not higher_is_better)
    result = EvalResult(20, 30, 0, metric, [0, 1, 2, 3], {"m": st}, higher_is_better=higher_is_better)
    plot_steps(Run(tmp_path), plt, result)
    return scales[0]


@pytest.mark.parametrize("metric, higher, scale", [("mse", False, "log"), ("return", True, "linear"),
                                                   ("accuracy (%)", True, "linear")])
def test_positive_losses_are_drawn_on_a_log_scale_and_scores_on_a_linear_one(tmp_path, monkeypatch, metric,
                                                                             higher, scale):
    assert drawn_scale(tmp_path, metric, higher, monkeypatch) == scale


def test_an_evaluation_saved_before_the_flag_reads_its_kind_from_the_metric_name():
    st = CurveStats.from_curve(torch.ones(3, 2), loss=False)
    saved = EvalResult(5, 3, 0, "return", [0, 1], {"m": st}, higher_is_better=True).to_dict()
    assert EvalResult.from_dict(saved).higher_is_better
    del saved["higher_is_better"]
    assert EvalResult.from_dict(saved).higher_is_better
    assert not EvalResult.from_dict({**saved, "metric": "mse"}).higher_is_better
    assert EvalResult.from_dict({**saved, "metric": "success rate"}).higher_is_better
