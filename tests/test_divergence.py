"""Diverged tasks are detected and reported beside the mean, and the safeguarded adaptation
(``algo.safeguard``) never raises a task's support loss, while equal to plain adaptation
whenever every step lowers it."""
import math

import pytest
import torch
import torch.nn.functional as F

import metalearn as ml
from metalearn.training.build import build_algorithm, build_tasks
from metalearn.config import Config, apply_overrides, validate
from metalearn.errors import ConfigError
from metalearn.evaluation.adaptation import DIVERGENCE_FACTOR, CurveStats, EvalResult, diverged_tasks
from metalearn.functional import adapt, adaptation_curve, make_forward, sgd


def curve_with_one_diverged(n=50):
    gen = torch.Generator().manual_seed(0)
    before = 1 + torch.rand(n, 1, generator=gen)
    curve = before * torch.linspace(1, 0.1, 4).view(1, -1)   # every task improves
    curve[7] = torch.tensor([2.0, 0.5, 30.0, 1e6])             # one blows up from its third step
    return curve


def test_diverged_tasks_are_those_far_above_their_loss_before_adaptation_or_not_finite():
    curve = curve_with_one_diverged()
    curve[3, 3] = math.nan
    bad = diverged_tasks(curve)
    assert bad[7].tolist() == [False, False, True, True]
    assert bad[3].tolist() == [False, False, False, True]
    assert int(bad.sum()) == 3
    # exactly at the factor is not diverged; just above is
    edge = torch.tensor([[1.0, DIVERGENCE_FACTOR], [1.0, DIVERGENCE_FACTOR * 1.01]])
    assert diverged_tasks(edge)[:, 1].tolist() == [False, True]


def test_stats_and_table_give_the_mean_without_the_diverged_tasks():
    curve = curve_with_one_diverged()
    st = CurveStats.from_curve(curve, loss=True)
    assert st.diverged == [0, 0, 1, 1]
    kept = torch.cat([curve[:7], curve[8:]])
    assert st.mean_kept[3] == pytest.approx(float(kept[:, 3].mean()))
    assert st.mean[3] > 1e4 > 10 * st.mean_kept[3]
    result = EvalResult(10, 50, 0, "mse", [0, 1, 3], {"maml": st})
    table = result.table()
    assert "maml 1 of 50 after 3 steps" in table
    assert f"| maml, without diverged tasks | {st.mean_kept[0]:.3f}" in table
    assert f"{st.mean_kept[3]:.3f} ± {st.ci_kept[3]:.3f} (1) |" in table
    again = EvalResult.from_dict(result.to_dict())
    assert again.methods["maml"].diverged == [0, 0, 1, 1]


def test_accuracy_curves_and_healthy_losses_report_no_divergence():
    curve = torch.rand(20, 3) + 0.5
    assert not CurveStats.from_curve(curve * 100, loss=False).any_diverged
    healthy = CurveStats.from_curve(curve, loss=True)
    assert not healthy.any_diverged
    assert "Diverged" not in EvalResult(5, 20, 0, "mse", [0, 2], {"m": healthy}).table()


def test_steps_png_draws_the_mean_without_diverged_tasks(tmp_path):
    pytest.importorskip("matplotlib")
    from metalearn.report.figures import _pyplot, plot_steps
    from metalearn.runs import Run
    st = CurveStats.from_curve(curve_with_one_diverged(), loss=True)
    out = plot_steps(Run(tmp_path), _pyplot(), EvalResult(10, 50, 0, "mse", [0, 1, 3], {"maml": st}))
    assert out.read_bytes()[:4] == b"\x89PNG"


# -- the safeguard -------------------------------------------------------------------------------

def sine_setup(dtype=torch.float64):
    torch.manual_seed(0)
    model = ml.mlp(1, [20, 20], 1).to(dtype)
    batch = ml.SinusoidTasks(shots=10).sample(6, torch.Generator().manual_seed(3)).to(dtype=dtype)
    params = {k: v.detach() for k, v in model.named_parameters()}
    return make_forward(model), params, batch


@pytest.mark.parametrize("engine", ["loop", "vmap"])
def test_safeguard_equals_plain_adaptation_while_every_step_lowers_the_support_loss(engine):
    forward, params, batch = sine_setup()
    rule = sgd(1e-3)
    plain = adaptation_curve(forward, F.mse_loss, params, batch, rule, 5, engine=engine)
    safe = adaptation_curve(forward, F.mse_loss, params, batch, rule, 5, engine=engine, safeguard=True)
    assert torch.equal(plain, safe)


@pytest.mark.parametrize("engine", ["loop", "vmap"])
def test_safeguard_never_raises_the_support_loss_where_plain_steps_diverge(engine):
    forward, params, batch = sine_setup()
    rule = sgd(0.5)  # far too large: plain steps blow up
    support = ml.TaskBatch(batch.support_x, batch.support_y, batch.support_x, batch.support_y)
    plain = adaptation_curve(forward, F.mse_loss, params, support, rule, 8, engine=engine)
    safe = adaptation_curve(forward, F.mse_loss, params, support, rule, 8, engine=engine, safeguard=True)
    assert diverged_tasks(plain)[:, -1].any()
    # monotone on the support set (up to float64 round-off: vmap recomputes the loss in another order)
    assert (safe[:, 1:] <= safe[:, :-1] + 1e-12).all()
    assert not diverged_tasks(safe).any()
    assert (safe[:, -1] < safe[:, 0]).any()              # and still makes progress somewhere


def test_safeguarded_adapt_matches_its_curve():
    forward, params, batch = sine_setup()
    rule = sgd(0.5)
    curve = adaptation_curve(forward, F.mse_loss, params, batch, rule, 4, safeguard=True)
    for t in range(batch.num_tasks):
        fast = adapt(forward, F.mse_loss, params, batch.support_x[t], batch.support_y[t], rule, 4,
                     "first_order", safeguard=True)
        assert float(F.mse_loss(forward(fast, batch.query_x[t]), batch.query_y[t])) == pytest.approx(
            float(curve[t, -1]), rel=1e-12)


def test_the_safeguard_is_a_config_choice_refused_where_it_cannot_apply():
    cfg = validate(apply_overrides(ml.load_preset("sinusoid-safeguard"), ["model.hidden=[8]"]))
    algo = build_algorithm(cfg, build_tasks(cfg))
    assert algo.safeguard and not build_algorithm(
        validate(apply_overrides(ml.load_preset("sinusoid"), ["model.hidden=[8]"])), build_tasks(cfg)).safeguard
    learner_default = algo.adapt(*build_tasks(cfg).sample(1).support_x, torch.zeros(10, 1), steps=2)
    assert learner_default(torch.zeros(3, 1)).shape == (3, 1)
    bad = Config()
    bad.algo.name, bad.algo.safeguard = "mamlpp", True
    with pytest.raises(ConfigError, match="mamlpp adapts its own way"):
        build_algorithm(bad, build_tasks(bad))
