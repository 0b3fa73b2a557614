"""Gradient correctness of the functional core, in float64."""
import pytest
import torch
from torch import nn

import metalearn as ml
from metalearn.functional import adapt_reference, make_forward, meta_loss, named_params, sgd
from metalearn.tasks import TaskBatch

MSE = torch.nn.functional.mse_loss


def tiny_setup(seed=0, tasks=3, shots=4):
    torch.manual_seed(seed)
    model = ml.mlp(1, [5, 4], 1, activation="tanh").double()
    batch = ml.SinusoidTasks(shots=shots).sample(tasks, torch.Generator().manual_seed(seed)).to(dtype=torch.float64)
    return model, batch


def flat_grad(loss, params):
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(params.values()))])


@pytest.mark.parametrize("engine", ["loop", "vmap"])
@pytest.mark.parametrize("steps", [1, 3])
def test_second_order_meta_gradient_matches_finite_differences(engine, steps):
    model, batch = tiny_setup()
    fwd = make_forward(model)
    params = named_params(model)
    rule = sgd(0.05)

    def f(p):
        return meta_loss(fwd, MSE, p, batch, rule, steps, "second_order", engine)

    analytic = flat_grad(f(params), params)
    eps = 1e-6
    numeric = []
    with torch.no_grad():
        for name, p in params.items():
            for i in range(p.numel()):
                orig = p.view(-1)[i].item()
                p.view(-1)[i] = orig + eps
                with torch.enable_grad():
                    up = f(params).item()
                p.view(-1)[i] = orig - eps
                with torch.enable_grad():
                    down = f(params).item()
                p.view(-1)[i] = orig
                numeric.append((up - down) / (2 * eps))
    numeric = torch.tensor(numeric, dtype=torch.float64)
    assert torch.allclose(analytic, numeric, rtol=1e-5, atol=1e-7), (analytic - numeric).abs().max()


@pytest.mark.parametrize("engine", ["loop", "vmap"])
def test_first_order_equals_detached_reference(engine):
    model, batch = tiny_setup(seed=1)
    fwd = make_forward(model)
    params = named_params(model)
    lr, steps = 0.05, 2
    got = flat_grad(meta_loss(fwd, MSE, params, batch, sgd(lr), steps, "first_order", engine), params)
    # Reference: adapt without any graph, then the query-loss gradient at the adapted point, averaged.
    ref = torch.zeros_like(got)
    for t in range(batch.num_tasks):
        fast = {k: v.detach().clone() for k, v in params.items()}
        for _ in range(steps):
            leaf = {k: v.requires_grad_(True) for k, v in fast.items()}
            g = torch.autograd.grad(MSE(fwd(leaf, batch.support_x[t]), batch.support_y[t]), list(leaf.values()))
            fast = {k: (v - lr * gi).detach() for (k, v), gi in zip(leaf.items(), g)}
        leaf = {k: v.requires_grad_(True) for k, v in fast.items()}
        ref += flat_grad(MSE(fwd(leaf, batch.query_x[t]), batch.query_y[t]), leaf) / batch.num_tasks
    assert torch.allclose(got, ref, rtol=1e-10, atol=1e-12)
    so = flat_grad(meta_loss(fwd, MSE, params, batch, sgd(lr), steps, "second_order", engine), params)
    assert not torch.allclose(got, so, rtol=1e-3), "first and second order must differ on a nonlinear model"


@pytest.mark.parametrize("mode", ["second_order", "first_order"])
def test_vmap_path_equals_per_task_reference(mode):
    model, batch = tiny_setup(seed=2, tasks=5)
    fwd = make_forward(model)
    params = named_params(model)
    loop = meta_loss(fwd, MSE, params, batch, sgd(0.1), 2, mode, "loop")
    fast = meta_loss(fwd, MSE, params, batch, sgd(0.1), 2, mode, "vmap")
    assert torch.allclose(loop, fast, rtol=1e-12)
    assert torch.allclose(flat_grad(loop, params), flat_grad(fast, params), rtol=1e-10, atol=1e-13)


def test_any_module_with_a_functional_forward_works():
    class Poly(nn.Module):
        """Not built from nn.Linear: a cubic with free coefficients."""

        def __init__(self):
            super().__init__()
            self.coef = nn.Parameter(torch.randn(4, dtype=torch.float64) * 0.1)

        def forward(self, x):
            return sum(self.coef[i] * x ** i for i in range(4))

    model = Poly()
    batch = TaskBatch(*(torch.randn(2, 6, 1, dtype=torch.float64) for _ in range(4)))
    for engine in ("loop", "vmap"):
        maml = ml.MAML(model, inner_lr=0.01, engine=engine)
        loss = maml.meta_loss(batch)
        loss.backward()
        assert model.coef.grad is not None and torch.isfinite(model.coef.grad).all()
        model.coef.grad = None


def test_rules_do_not_mutate_their_inputs():
    p = {"w": torch.ones(3)}
    g = {"w": torch.full((3,), 2.0)}
    rule = sgd(0.5)
    new, _ = rule.update(g, rule.init(p), p)
    assert torch.equal(p["w"], torch.ones(3)) and torch.equal(new["w"], torch.zeros(3))
    with pytest.raises(ValueError):
        sgd(0.0)


def test_reference_adapt_lowers_support_loss():
    model, batch = tiny_setup(seed=3)
    fwd = make_forward(model)
    params = named_params(model)
    x, y = batch.support_x[0], batch.support_y[0]
    fast = adapt_reference(fwd, MSE, params, x, y, sgd(0.05), 5, "first_order")
    assert MSE(fwd(fast, x), y) < MSE(fwd(params, x), y)


def test_a_supervised_batch_is_a_task_loss_and_its_fast_paths_equal_the_per_task_reference():
    """One contract: the same tasks as a TaskBatch (loop and vmap fast paths) and as a TaskTree with
    SupervisedLoss (the per-task reference) give the same meta-loss, meta-gradient and curve in float64."""
    import torch.nn.functional as F

    from metalearn.batch import SupervisedLoss
    from metalearn.functional import TaskRecord, adaptation_curve, make_forward, meta_backward, meta_loss, sgd
    from metalearn.protocols import TaskLoss

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    forward = make_forward(model)
    xs, xq = torch.randn(4, 5, 1, dtype=torch.float64), torch.randn(4, 6, 1, dtype=torch.float64)
    batch = ml.TaskBatch(xs, torch.sin(xs), xq, torch.sin(xq))
    tree = batch.as_tree(F.mse_loss)
    assert isinstance(tree.task_loss, SupervisedLoss) and isinstance(tree.task_loss, TaskLoss)
    rule = sgd(0.1)

    def grads(b, engine):
        params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
        record = TaskRecord()
        loss = meta_backward(forward, F.mse_loss, params, b, rule, 2, "second_order", engine, record=record)
        return loss, {k: v.grad for k, v in params.items()}, record

    ref_loss, ref_grads, record = grads(tree, "loop")
    assert len(record.collected) == 4 and record.metrics == {}
    for engine in ("loop", "vmap"):
        loss, g, _ = grads(batch, engine)
        torch.testing.assert_close(loss, ref_loss.to(loss.dtype))
        for k in g:
            torch.testing.assert_close(g[k], ref_grads[k])
    params = dict(model.named_parameters())
    torch.testing.assert_close(meta_loss(forward, F.mse_loss, params, batch, rule, 2, engine="vmap"),
                               meta_loss(forward, F.mse_loss, params, tree, rule, 2))
    torch.testing.assert_close(adaptation_curve(forward, F.mse_loss, params, batch, rule, 3, engine="vmap"),
                               adaptation_curve(forward, F.mse_loss, params, tree, rule, 3))
    with pytest.raises(TypeError, match="scored by the name"):
        adaptation_curve(forward, F.mse_loss, params, tree, rule, 1, metric=F.l1_loss)
