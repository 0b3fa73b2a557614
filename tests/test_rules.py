"""Inner rules are chains of gradient transforms; each library rule gives the numbers of the
hand-written update it replaced, to the last bit, and new rules compose from the same pieces."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, vmap

import metalearn as ml
from metalearn.algorithms import get_spec
from metalearn.functional import (
    adam,
    chain,
    clip_by_global_norm,
    momentum_sgd,
    nesterov,
    per_parameter_sgd,
    rmsprop,
    scale,
    sgd,
    trace,
)


def hand_written(name, lr):
    """The updates as the library wrote them before rules were chains (reference formulas)."""
    if name == "sgd":
        return lambda g, s, p: ({k: v - lr * g[k] for k, v in p.items()}, s), lambda p: None
    if name == "momentum_sgd":
        def update(g, m, p):
            m = {k: 0.9 * m[k] + g[k] for k in p}
            return {k: v - lr * m[k] for k, v in p.items()}, m
        return update, lambda p: {k: torch.zeros_like(v) for k, v in p.items()}
    if name == "nesterov":
        def update(g, m, p):
            m = {k: 0.9 * m[k] + g[k] for k in p}
            return {k: v - lr * (g[k] + 0.9 * m[k]) for k, v in p.items()}, m
        return update, lambda p: {k: torch.zeros_like(v) for k, v in p.items()}
    if name == "rmsprop":
        def update(g, sq, p):
            sq = {k: 0.99 * sq[k] + 0.01 * g[k] ** 2 for k in p}
            return {k: v - lr * g[k] / (sq[k].sqrt() + 1e-8) for k, v in p.items()}, sq
        return update, lambda p: {k: torch.zeros_like(v) for k, v in p.items()}
    if name == "adam":
        def update(g, state, p):
            t, m, v = state
            t += 1
            m = {k: 0.9 * m[k] + 0.1 * g[k] for k in p}
            v = {k: 0.999 * v[k] + 0.001 * g[k] ** 2 for k in p}
            c1, c2 = 1 - 0.9 ** t, 1 - 0.999 ** t
            return {k: x - lr * (m[k] / c1) / ((v[k] / c2).sqrt() + 1e-8) for k, x in p.items()}, (t, m, v)
        return update, lambda p: (0, {k: torch.zeros_like(x) for k, x in p.items()},
                                  {k: torch.zeros_like(x) for k, x in p.items()})
    raise KeyError(name)


RULES = {"sgd": sgd, "momentum_sgd": momentum_sgd, "nesterov": nesterov, "rmsprop": rmsprop, "adam": adam}


@pytest.mark.parametrize("name", sorted(RULES))
def test_library_rules_equal_the_hand_written_updates_bit_for_bit(name):
    gen = torch.Generator().manual_seed(0)
    params = {"w": torch.randn(5, 3, generator=gen), "b": torch.randn(3, generator=gen)}
    rule, (ref_update, ref_init) = RULES[name](0.03), hand_written(name, 0.03)
    ours, theirs = dict(params), dict(params)
    state, ref_state = rule.init(ours), ref_init(theirs)
    for _ in range(6):
        g = {k: torch.randn(v.shape, generator=gen) for k, v in params.items()}
        ours, state = rule.update(g, state, ours)
        theirs, ref_state = ref_update(g, ref_state, theirs)
        for k in params:
            assert torch.equal(ours[k], theirs[k]), (name, k)


def test_learned_rates_are_differentiable_and_freeze():
    rates = {"w": torch.full((2,), 0.1, requires_grad=True)}
    rule = per_parameter_sgd(rates)
    p = {"w": torch.ones(2)}
    new, _ = rule.update({"w": torch.tensor([1.0, 2.0])}, rule.init(p), p)
    (g,) = torch.autograd.grad(new["w"].sum(), [rates["w"]])
    assert torch.equal(g, torch.tensor([-1.0, -2.0]))
    frozen = rule.frozen()
    out, _ = frozen.update({"w": torch.tensor([1.0, 2.0])}, frozen.init(p), p)
    assert not out["w"].requires_grad and torch.equal(out["w"], new["w"].detach())


def test_clip_by_global_norm_bounds_the_step_and_runs_under_vmap():
    rule = chain(clip_by_global_norm(1.0), scale(-1.0))
    params = {"a": torch.zeros(3), "b": torch.zeros(4)}
    big = {"a": torch.full((3,), 10.0), "b": torch.full((4,), -10.0)}
    new, _ = rule.update(big, rule.init(params), params)
    norm = torch.sqrt(sum((v ** 2).sum() for v in new.values()))
    assert norm.item() == pytest.approx(1.0, rel=1e-6)
    small = {"a": torch.full((3,), 0.01), "b": torch.zeros(4)}
    new, _ = rule.update(small, rule.init(params), params)
    assert torch.allclose(new["a"], -small["a"])  # below the bound: unchanged

    def one(x):
        g = grad(lambda p: (p["a"] * x).sum() ** 2)({"a": torch.ones(3)})
        return rule.update(g, rule.init(g), {"a": torch.ones(3)})[0]["a"]
    out = vmap(one)(torch.randn(4, 3) * 100)
    assert (torch.linalg.vector_norm(out - 1, dim=1) <= 1.0 + 1e-5).all()


def test_maml_with_inner_momentum_is_a_composition_checked_against_a_reference():
    """``mamlmom``, the one-file algorithm: with momentum 0 it is MAML to the bit; with 0.9 its
    meta-loss equals a hand-written heavy-ball inner loop, and its meta-gradient that loop's, in float64."""
    batch = ml.SinusoidTasks(shots=5).sample(3, torch.Generator().manual_seed(0)).to(dtype=torch.float64)
    family = ml.SinusoidTasks(shots=5)

    def build(name, **kw):
        torch.manual_seed(0)
        spec = get_spec(name)
        settings = spec.settings(inner_lr=0.05, inner_steps=3, engine="loop", **kw)
        return spec.cls.from_settings(ml.mlp(1, [8], 1, "tanh").double(), family, settings).double()

    assert torch.equal(build("mamlmom", inner_momentum=0.0).meta_loss(batch), build("maml").meta_loss(batch))
    algo = build("mamlmom", inner_momentum=0.9)
    params = algo.params()
    total = 0.0
    for t in range(batch.num_tasks):
        p, m = params, {k: torch.zeros_like(v) for k, v in params.items()}
        for _ in range(3):
            loss = F.mse_loss(algo._forward(p, batch.support_x[t]), batch.support_y[t])
            g = dict(zip(p, torch.autograd.grad(loss, list(p.values()), create_graph=True)))
            m = {k: 0.9 * m[k] + g[k] for k in p}
            p = {k: v - 0.05 * m[k] for k, v in p.items()}
        total = total + F.mse_loss(algo._forward(p, batch.query_x[t]), batch.query_y[t])
    reference = total / batch.num_tasks
    value = algo.meta_loss(batch)
    torch.testing.assert_close(value, reference, rtol=1e-12, atol=0)
    for a, b in zip(torch.autograd.grad(value, list(params.values())),
                    torch.autograd.grad(reference, list(params.values()))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_a_momentum_rule_from_transforms_is_the_same_as_momentum_sgd():
    a, b = chain(trace(0.9), scale(-0.1)), momentum_sgd(0.1, 0.9)
    p = {"x": torch.randn(4)}
    sa, sb = a.init(p), b.init(p)
    pa, pb = p, p
    for _ in range(3):
        g = {"x": torch.randn(4)}
        pa, sa = a.update(g, sa, pa)
        pb, sb = b.update(g, sb, pb)
    assert torch.equal(pa["x"], pb["x"])
