"""The learned LSTM optimizer (Andrychowicz et al. 2016): rule state handling, gradients of the
unrolled meta-loss, the torch.optim wrapper, and the presets end to end."""
import math

import pytest
import torch
from torch import nn

from metalearn.tasks.optimizees.optimize import optimize
from metalearn.cli.main import main
from metalearn.errors import ConfigError
from metalearn.learned_optim import L2L, LearnedOptimizer, LSTMOptimizerNet, QuadraticProblems, lstm_rule, preprocess


def test_preprocessing_matches_the_paper():
    p = 10.0
    g = torch.tensor([1.0, -0.5, 1e-3, -1e-6, 0.0])
    out = preprocess(g, p)
    assert out[0].tolist() == pytest.approx([0.0, 1.0])
    assert out[1].tolist() == pytest.approx([math.log(0.5) / p, -1.0])
    assert out[2].tolist() == pytest.approx([math.log(1e-3) / p, 1.0])     # 1e-3 >= e^-10
    assert out[3].tolist() == pytest.approx([-1.0, -1e-6 * math.exp(p)])   # 1e-6 < e^-10 = 4.5e-5
    assert out[4].tolist() == pytest.approx([-1.0, 0.0])


def test_rule_state_per_coordinate_over_several_tensors():
    torch.manual_seed(0)
    net = LSTMOptimizerNet()
    rule = lstm_rule(net)
    params = {"w": torch.randn(3, 4), "b": torch.randn(5)}
    state = rule.init(params)
    assert all(s.shape == (17, 20) for s in state)
    grads = {"w": torch.randn(3, 4), "b": torch.zeros(5)}
    new, state2 = rule.update(grads, state, params)
    assert new["w"].shape == (3, 4) and new["b"].shape == (5,)
    assert not torch.equal(state2[0], state[0])
    # coordinatewise: a coordinate's update depends on its own gradient only
    grads2 = {"w": grads["w"].clone(), "b": grads["b"].clone()}
    grads2["w"][0, 0] += 1.0
    new2, _ = rule.update(grads2, state, params)
    changed = (new2["w"] != new["w"]).nonzero().tolist()
    assert changed == [[0, 0]] and torch.equal(new2["b"], new["b"])


@pytest.mark.parametrize("objective", ["loss", "log_loss"])
def test_unrolled_meta_gradient_matches_finite_differences(fd_check, objective):
    """Float64, a tiny quadratic, second-order mode, one 3-step unroll."""
    torch.manual_seed(0)
    fam = QuadraticProblems(dim=3, horizon=3)
    batch = fam.sample(2, torch.Generator().manual_seed(0)).to(dtype=torch.float64)
    net = LSTMOptimizerNet(hidden=4).double()
    loss = lambda: L2L(net, fam, horizon=3, unroll=3, mode="second_order",  # noqa: E731
                       objective=objective).meta_loss(batch)
    fd_check(loss, list(net.parameters()), coords=4, abs_tol=1e-8, seed=1)


def test_log_objective_is_the_mean_log_of_the_trajectory_losses():
    fam = QuadraticProblems(dim=4, horizon=3)
    batch = fam.sample(3, torch.Generator().manual_seed(0))
    net = LSTMOptimizerNet()
    plain = L2L(net, fam, horizon=3, unroll=3).meta_loss(batch)
    logged = L2L(net, fam, horizon=3, unroll=3, objective="log_loss").meta_loss(batch)
    _, curve = optimize(fam, batch, lstm_rule(net), 3)  # losses before each step and after the last
    torch.testing.assert_close(plain, curve[:, 1:].mean(1).mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logged, curve[:, 1:].log().mean(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="unknown l2l objective 'mse'; choose one of: loss, log_loss"):
        L2L(net, fam, objective="mse")


def test_truncated_unrolls_carry_the_optimizee_state():
    fam = QuadraticProblems(dim=4, horizon=10)
    algo = L2L(LSTMOptimizerNet(), fam, horizon=10, unroll=4)
    gen = torch.Generator().manual_seed(0)
    b1 = fam.sample(3, gen)
    algo.meta_loss(b1)
    assert algo._run["t"] == 4 and not torch.equal(algo._run["params"]["theta"], b1.params["theta"])
    algo.meta_loss(fam.sample(3, gen))  # continues the same run: the new batch is not used yet
    assert algo._run["t"] == 8 and torch.equal(algo._run["data"]["W"], b1.data["W"])
    algo.meta_loss(fam.sample(3, gen))
    assert algo._run["t"] == 10
    b4 = fam.sample(3, gen)
    algo.meta_loss(b4)  # a new run starts from the new problems
    assert algo._run["t"] == 4 and torch.equal(algo._run["data"]["W"], b4.data["W"])
    # the state in flight round-trips through the state dict
    other = L2L(LSTMOptimizerNet(), fam, horizon=10, unroll=4)
    other.load_state_dict(algo.state_dict())
    assert other._run["t"] == 4 and torch.equal(other._run["params"]["theta"], algo._run["params"]["theta"])


def test_torch_optimizer_wrapper_matches_the_rule_and_round_trips():
    torch.manual_seed(0)
    net = LSTMOptimizerNet(output_scale=0.01)
    model = nn.Linear(3, 1)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    opt = LearnedOptimizer(model.parameters(), net)
    params0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    rule = lstm_rule(net)
    grads = {k: v.grad.clone() for k, v in model.named_parameters()}
    # the wrapper keeps one state per tensor; the functional rule one for all: same per coordinate
    expected = {}
    for k in params0:
        expected.update(rule.update({k: grads[k]}, rule.init({k: params0[k]}), {k: params0[k]})[0])
    for k, v in model.named_parameters():
        torch.testing.assert_close(v.detach(), expected[k])
    sd = opt.state_dict()
    opt2 = LearnedOptimizer(nn.Linear(3, 1).parameters(), LSTMOptimizerNet())
    opt2.load_state_dict(sd)
    p_old = next(iter(opt.state.values()))
    p_new = next(iter(opt2.state.values()))
    assert torch.equal(p_old["h1"], p_new["h1"])
    assert torch.equal(opt2.net.out.weight, net.out.weight)


@pytest.fixture(scope="module")
def meta_trained():
    """An LSTM optimizer meta-trained briefly on 10-d quadratics, and its loss before and after."""
    torch.manual_seed(0)
    fam = QuadraticProblems(dim=10, horizon=20)
    algo = L2L(LSTMOptimizerNet(), fam, horizon=20, unroll=10)
    val = fam.sample(50, torch.Generator().manual_seed(99))
    before = algo.adaptation_curve(val, 20)[:, -1].mean().item()
    opt = torch.optim.Adam(algo.parameters(), 3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(120):
        opt.zero_grad()
        algo.meta_loss(fam.sample(32, gen)).backward()
        opt.step()
    return algo.model, before, algo.adaptation_curve(val, 20)[:, -1].mean().item()


def test_meta_training_improves_the_learned_optimizer_on_quadratics(meta_trained):
    _, before, after = meta_trained
    assert after < 0.5 * before, (before, after)


def test_wrapper_trains_an_ordinary_model(meta_trained):
    net = meta_trained[0]
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(256, 5)
    y = x @ torch.randn(5, 1) + 0.1 * torch.randn(256, 1)
    opt = LearnedOptimizer(model.parameters(), net)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


@pytest.mark.slow
@pytest.mark.parametrize("preset, extra", [("l2l-quadratic", []), ("l2l-mnist", ["--set", "task.minibatch=16"])])
def test_presets_end_to_end(preset, extra, tmp_path, capsys, data_dir):
    out = tmp_path / preset
    args = ["train", preset, "--out", str(out), "--steps", "10", "--quiet", "--set", "train.meta_batch=4",
            "--set", "train.val_every=5", "--set", "train.val_tasks=4", "--set", "train.log_every=5",
            "--set", "task.horizon=10", "--set", "task.unroll=5", "--set", "eval.tasks=6", *extra]
    assert main(args) == 0
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "LSTM (learned)" in printed and "Adam" in printed and "RMSprop" in printed
    assert "Paired difference LSTM - optimizer on the same 6 problems" in printed and "| LSTM - Adam |" in printed
    if preset == "l2l-mnist":
        assert "2 hidden layers" in printed and "ReLU" in printed
    assert main(["report", str(out), "--quiet"]) == 0
    assert (out / "report" / "loss_curves.png").stat().st_size > 10_000
    model = nn.Linear(4, 2)
    opt = LearnedOptimizer.from_run(out, model.parameters())
    model(torch.randn(8, 4)).pow(2).mean().backward()
    opt.step()


class _FlatQuadratic(QuadraticProblems):
    """A badly scaled quadratic, ``scale * ||W theta - y||^2``: the best SGD rate is ~1/scale."""

    def __init__(self, scale: float) -> None:
        super().__init__(dim=4, horizon=10)
        self.scale = scale

    def losses(self, params, data, t=0):
        return self.scale * super().losses(params, data, t)

    final_loss = losses


@pytest.mark.parametrize("scale, beyond", [(1e-3, lambda lr: lr > 3.0), (1e4, lambda lr: lr < 1e-4)])
def test_learning_rate_search_goes_past_the_grid(scale, beyond):
    from metalearn.evaluation.optimizers import LR_GRID, tune_lr
    lr = tune_lr(_FlatQuadratic(scale), "SGD", steps=10, problems=4, seed=0)
    assert lr not in LR_GRID and beyond(lr)
    assert tune_lr(QuadraticProblems(dim=4, horizon=10), "SGD", steps=10, problems=4, seed=0) in LR_GRID


def test_validation_goes_by_the_final_loss_on_the_evaluation_data():
    class Held(QuadraticProblems):  # a family whose evaluation loss differs from its step losses
        def final_loss(self, params, data, t=0):
            return 10.0 + self.losses(params, data)

    fam = Held(dim=4, horizon=5)
    net = LSTMOptimizerNet()
    batch = fam.sample(3, torch.Generator().manual_seed(0))
    curve = L2L(net, fam, horizon=5, unroll=5).adaptation_curve(batch, 5)
    _, plain = optimize(fam, batch, lstm_rule(net), 5)
    torch.testing.assert_close(curve[:, :-1], plain[:, :-1])
    torch.testing.assert_close(curve[:, -1], 10.0 + plain[:, -1])
