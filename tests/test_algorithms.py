"""The contract every registered algorithm meets."""
import pytest
import torch

import metalearn as ml
from metalearn.algorithms import get_spec

ALGOS = [a for a in ml.list_algorithms()
         if "regression" in ml.get_algorithm(a).task_kinds and ml.get_algorithm(a).trainable]


def make(name, seed=0, **kw):
    """As the CLI builds it: registry settings (inner lr 0.01, then ``kw``) and ``from_settings``."""
    torch.manual_seed(seed)
    spec = get_spec(name)
    return spec.cls.from_settings(ml.mlp(1, [40, 40], 1), ml.SinusoidTasks(), spec.settings(inner_lr=0.01, **kw))


@pytest.mark.parametrize("name", ALGOS)
def test_adapting_lowers_the_support_loss(name):
    algo = make(name)
    batch = ml.SinusoidTasks(shots=10).sample(8, torch.Generator().manual_seed(0))
    lowered = 0
    for t in range(batch.num_tasks):
        x, y = batch.support_x[t], batch.support_y[t]
        before = torch.nn.functional.mse_loss(algo.adapt(x, y, steps=0)(x), y)
        after = torch.nn.functional.mse_loss(algo.adapt(x, y, steps=5)(x), y)
        lowered += bool(after < before)
    assert lowered == batch.num_tasks


@pytest.mark.parametrize("name", ALGOS)
def test_meta_gradient_is_finite_and_reaches_every_meta_parameter(name):
    algo = make(name)
    loss = algo.meta_loss(ml.SinusoidTasks().sample(4, torch.Generator().manual_seed(1)))
    loss.backward()
    for pname, p in algo.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", ALGOS)
def test_adapt_returns_a_new_learner_and_leaves_the_model_alone(name):
    algo = make(name)
    before = {k: v.clone() for k, v in algo.state_dict().items()}
    b = ml.SinusoidTasks().sample(1)
    learner = algo.adapt(b.support_x[0], b.support_y[0], steps=3)
    out = learner(b.query_x[0])
    assert out.shape == b.query_y[0].shape and not out.requires_grad
    for k, v in algo.state_dict().items():
        assert torch.equal(v, before[k])
    assert any(not torch.equal(learner.params[k], v) for k, v in algo.params().items())


def test_adaptation_curve_starts_at_the_unadapted_loss():
    algo = make("maml")
    batch = ml.SinusoidTasks().sample(6, torch.Generator().manual_seed(2))
    curve = algo.adaptation_curve(batch, 4)
    assert curve.shape == (6, 5)
    with torch.no_grad():
        direct = torch.stack([torch.nn.functional.mse_loss(algo.model(batch.query_x[t]), batch.query_y[t])
                              for t in range(6)])
    assert torch.allclose(curve[:, 0], direct, rtol=1e-5)


@pytest.mark.slow
def test_meta_training_step_memory_stays_flat(rss_bytes):
    """No autograd graph survives an outer step: 150 more steps of a wide MLP must not grow RSS
    (a leaked graph would hold 25 adapted copies of ~70k weights per step, about 7 MB)."""
    torch.manual_seed(0)
    algo = ml.MAML(ml.mlp(1, [256, 256], 1), inner_lr=0.01)
    tasks = ml.SinusoidTasks()
    opt = torch.optim.Adam(algo.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)
    history = []

    def step():
        opt.zero_grad()
        loss = algo.meta_loss(tasks.sample(25, gen))
        loss.backward()
        opt.step()
        history.append(loss.item())
        one = tasks.sample(1, gen)
        algo.adapt(one.support_x[0], one.support_y[0], steps=2)

    for _ in range(30):
        step()
    start = rss_bytes()
    for _ in range(150):
        step()
    grown = (rss_bytes() - start) / 2**20
    assert grown < 40, f"resident memory grew by {grown:.0f} MB over 150 outer steps"
