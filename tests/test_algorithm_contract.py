"""The contract every registered algorithm meets, on tiny few-shot image episodes (and the
gradient-based ones also on sine waves). A new algorithm gets all of this by registering."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

import metalearn as ml
from metalearn.algorithms import get_algorithm, get_spec
from metalearn.data.images import ImageDataset
from metalearn.functional import make_forward
from metalearn.tasks import FewShotTasks

WAYS = 3


def toy_images(classes=8, per_class=6, size=16, seed=0):
    """Classes are noisy copies of a per-class template, so they are learnable."""
    gen = torch.Generator().manual_seed(seed)
    per, names = [], []
    for c in range(classes):
        template = torch.rand(1, size, size, generator=gen)
        imgs = (template + 0.3 * torch.rand(per_class, 1, size, size, generator=gen)).clamp(0, 1)
        per.append((imgs * 255).to(torch.uint8))
        names.append(str(c))
    return ImageDataset.from_class_lists(per, names)


# The contract suite's table (in the manner of optax's alias tests): each algorithm's settings for
# these tiny models. An algorithm that is not listed runs with its registry defaults, so a new
# algorithm registered with one line is covered without editing this file.
SETTINGS = {
    "maml": dict(inner_lr=0.3, inner_steps=1),
    "anil": dict(inner_lr=0.3, inner_steps=1),
    "metasgd": dict(inner_lr=0.3, inner_steps=1),
    "pretrain": dict(inner_lr=0.3, inner_steps=1),
    "mamlpp": dict(inner_lr=0.3, inner_steps=2, msl_steps=10),
    "reptile": dict(inner_lr=0.01, inner_steps=3),
    "transfer": dict(inner_lr=0.1, inner_steps=20),
}


def build(name, model, family, dtype=torch.float32, **overrides):
    """The algorithm ``name`` as the CLI builds it: its registry settings (table row, then
    ``overrides``) and ``from_settings``."""
    spec = get_spec(name)
    settings = spec.settings(**{**SETTINGS.get(name, {}), **overrides})
    return spec.cls.from_settings(model.to(dtype), family, settings).to(dtype)


def make(name, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    tasks = FewShotTasks(toy_images(), WAYS, 2, 2)
    model = ml.models.conv4(1, 0 if get_algorithm(name).encoder_only else WAYS, width=4, image_size=16)
    return build(name, model, tasks, dtype), tasks


def training_batch(algo, tasks, n=3, dtype=torch.float32):
    b = algo.training_tasks(tasks).sample(n if algo.name != "transfer" else 12, torch.Generator().manual_seed(1))
    return b.to(dtype=dtype)


ALGOS = [a for a in ml.list_algorithms()
         if "classification" in get_algorithm(a).task_kinds and get_algorithm(a).trainable]
# whose meta-loss is the function whose gradient the meta-gradient is (not Reptile's surrogate)
OBJECTIVES = [a for a in ALGOS if get_algorithm(a).meta_loss_is_objective]
# that run the inner loop on either engine (their settings have one)
ENGINES = [a for a in ml.list_algorithms() if "engine" in {f.name for f in dataclasses.fields(get_spec(a).settings)}
           and get_algorithm(a).trainable and "regression" in get_algorithm(a).task_kinds]


@pytest.mark.parametrize("name", ALGOS)
def test_adaptation_lowers_the_support_loss(name):
    algo, tasks = make(name)
    batch = tasks.sample(6, torch.Generator().manual_seed(2))
    for t in range(batch.num_tasks):
        x, y = batch.support_x[t], batch.support_y[t]
        after = F.cross_entropy(algo.adapt(x, y, steps=10)(x), y)
        if algo.gradient_based and name != "transfer":
            before = F.cross_entropy(algo.adapt(x, y, steps=0)(x), y)
        else:  # an untrained head / no adaptation is at chance
            before = torch.tensor(math.log(WAYS))
        assert after < before, (name, t, float(before), float(after))


@pytest.mark.parametrize("name", ALGOS)
def test_meta_gradient_is_finite_and_reaches_every_meta_parameter(name):
    algo, tasks = make(name)
    algo.on_step(0, 100)
    algo.meta_loss(training_batch(algo, tasks)).backward()
    conv_biases = {n for n, _ in algo.named_parameters() if n.startswith("model.features.") and n.endswith("0.bias")}
    for pname, p in algo.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        if pname not in conv_biases:  # a bias right before BatchNorm has an exactly-zero gradient
            assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", OBJECTIVES)
def test_meta_gradient_matches_finite_differences_in_float64(name, fd_check):
    algo, tasks = make(name, dtype=torch.float64)
    algo.on_step(3, 100)  # MAML++: multi-step weights mid-annealing, second order
    batch = training_batch(algo, tasks, dtype=torch.float64)
    fd_check(lambda: algo.meta_loss(batch), [p for p in algo.parameters() if p.requires_grad])


def biases_before_batchnorm(model):
    """Names of convolution biases that feed a batch-statistics BatchNorm: the normalisation
    subtracts them again, so their gradient is exactly zero in exact arithmetic."""
    layers = list(model.features)
    return {f"features.{i}.bias" for i, (a, b) in enumerate(zip(layers, layers[1:]))
            if isinstance(a, torch.nn.Conv2d) and isinstance(b, torch.nn.BatchNorm2d)}


def test_reptile_update_moves_toward_the_adapted_weights():
    """Reptile's gradient is theta - mean(phi): recompute phi with a plain loop and compare.

    Biases before a batch-statistics BatchNorm have a zero true gradient; Adam's normalisation
    turns the float64 round-off of that zero (which depends on the CPU's summation order) into
    steps of up to ~1e-10, so for them only "no real movement" is asserted: far below the lr-sized
    steps (1e-2) of the other parameters, on every CPU."""
    algo, tasks = make("reptile", dtype=torch.float64)
    batch = training_batch(algo, tasks, dtype=torch.float64)
    theta = {k: v.detach().clone() for k, v in algo.params().items()}
    loss = algo.meta_loss(batch)
    grads = torch.autograd.grad(loss, list(algo.params().values()))
    fwd = make_forward(algo.model)
    mean_phi = {k: torch.zeros_like(v) for k, v in theta.items()}
    for t in range(batch.num_tasks):
        x = torch.cat([batch.support_x[t], batch.query_x[t]])
        y = torch.cat([batch.support_y[t], batch.query_y[t]])
        w = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
        opt = torch.optim.Adam(w.values(), lr=0.01, betas=(0.0, 0.999))
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(fwd(w, x), y).backward()
            opt.step()
        for k in mean_phi:
            mean_phi[k] += w[k].detach() / batch.num_tasks
    zero = biases_before_batchnorm(algo.model)
    assert zero, "the toy Conv4 has conv biases before BatchNorm"
    for (k, th), g in zip(theta.items(), grads):
        if k in zero:
            assert g.abs().max() < 1e-6 and (th - mean_phi[k]).abs().max() < 1e-6, k
        else:
            assert (th - mean_phi[k]).abs().max() > 1e-4, k  # a real step, well above round-off
            assert torch.allclose(g, th - mean_phi[k], rtol=1e-6, atol=1e-9), k


@pytest.mark.parametrize("name", ENGINES)
def test_vmap_path_equals_the_per_task_loop_on_an_mlp(name):
    torch.manual_seed(0)
    family = ml.SinusoidTasks(shots=5)
    batch = family.sample(4, torch.Generator().manual_seed(0)).to(dtype=torch.float64)
    out = {}
    for engine in ("loop", "vmap"):
        torch.manual_seed(0)
        algo = build(name, ml.mlp(1, [8, 8], 1, "tanh"), family, torch.float64, inner_lr=0.05, inner_steps=2,
                     engine=engine)
        algo.on_step(3, 100)
        loss = algo.meta_loss(batch)
        out[engine] = (loss, torch.autograd.grad(loss, [p for p in algo.parameters() if p.requires_grad]))
    assert torch.allclose(out["loop"][0], out["vmap"][0], rtol=1e-10)
    for a, b in zip(out["loop"][1], out["vmap"][1]):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", ALGOS)
def test_checkpoint_round_trip(name, tmp_path):
    algo, tasks = make(name)
    algo.meta_loss(training_batch(algo, tasks)).backward()
    torch.save(algo.state_dict(), tmp_path / "a.pt")
    other, _ = make(name, seed=1)
    other.load_state_dict(torch.load(tmp_path / "a.pt", weights_only=True))
    batch = tasks.sample(2, torch.Generator().manual_seed(5))
    torch.testing.assert_close(algo.adaptation_curve(batch, 2), other.adaptation_curve(batch, 2))


def test_anil_adapts_only_the_head():
    algo, tasks = make("anil")
    assert algo.fast_keys() == ["head.weight", "head.bias"]
    b = tasks.sample(1)
    learner = algo.adapt(b.support_x[0], b.support_y[0], steps=3)
    for k, v in algo.params().items():
        same = torch.equal(learner.params[k], v)
        assert same == (not k.startswith("head")), k


def test_metasgd_and_mamlpp_learn_their_rates():
    for name in ("metasgd", "mamlpp"):
        algo, tasks = make(name)
        opt = torch.optim.Adam(algo.parameters(), 1e-2)
        before = {k: v.clone() for k, v in algo.lrs.items()}
        for _ in range(3):
            opt.zero_grad()
            algo.meta_loss(training_batch(algo, tasks)).backward()
            opt.step()
        assert any(not torch.equal(before[k], v) for k, v in algo.lrs.items()), name


def test_mamlpp_schedules():
    algo, _ = make("mamlpp")
    algo.first_order_steps = 5
    algo.on_step(0, 100)
    w0 = algo.step_weights()
    assert torch.allclose(w0, torch.full((2,), 0.5)) and algo.mode == "first_order"
    algo.on_step(5, 100)
    w5 = algo.step_weights()
    assert w5[-1] > w0[-1] and w5.sum().item() == pytest.approx(1.0) and algo.mode == "second_order"
    algo.on_step(10, 100)
    assert torch.equal(algo.step_weights(), torch.tensor([0.0, 1.0]))


def test_protonet_classifies_by_nearest_prototype():
    from metalearn.algorithms.metric.protonet import prototype_logits
    emb_s = torch.tensor([[0.0, 0.0], [0.2, 0.0], [5.0, 5.0]])
    ys = torch.tensor([0, 0, 1])
    logits = prototype_logits(emb_s, ys, torch.tensor([[0.1, 0.1], [4.0, 4.0]]))
    assert logits.argmax(1).tolist() == [0, 1]
    assert logits[0, 0].item() == pytest.approx(-0.01)  # distance to the mean (0.1, 0)


@pytest.mark.parametrize("name", ALGOS)
def test_memory_is_flat_over_outer_steps(name, rss_bytes):
    algo, tasks = make(name)
    sampler = algo.training_tasks(tasks)
    opt = torch.optim.Adam(algo.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)

    def step():
        opt.zero_grad()
        algo.meta_loss(sampler.sample(3 if name != "transfer" else 12, gen)).backward()
        opt.step()

    for _ in range(20):
        step()
    start = rss_bytes()
    for _ in range(100):
        step()
    assert (rss_bytes() - start) / 2**20 < 30


@pytest.mark.parametrize("name", ALGOS)
def test_meta_backward_equals_backward_of_the_meta_loss(name):
    """``meta_backward`` (task-by-task back-propagation where the algorithm has it, as MAML's loop
    engine does to hold one task's graph at a time) leaves the same gradients as
    ``meta_loss(batch).backward()``, scaled by ``scale``, in float64."""
    grads = {}
    for how in ("meta_loss", "meta_backward"):
        algo, tasks = make(name, torch.float64)
        algo.on_step(0, 100)
        batch = training_batch(algo, tasks, dtype=torch.float64)
        if how == "meta_loss":
            value = algo.meta_loss(batch)
            (0.5 * value).backward()
        else:
            value = algo.meta_backward(batch, scale=0.5)
        grads[how] = (float(value.detach()), {n: p.grad.clone() for n, p in algo.named_parameters() if p.grad is not None})
    assert grads["meta_backward"][0] == pytest.approx(grads["meta_loss"][0], rel=1e-12)
    assert grads["meta_backward"][1].keys() == grads["meta_loss"][1].keys()
    for n, g in grads["meta_loss"][1].items():
        torch.testing.assert_close(grads["meta_backward"][1][n], g, rtol=1e-10, atol=1e-12, msg=f"{name}: {n}")


# ---- the algorithms of the other kinds: reinforcement learning and learned optimizers -----------
# Each kind's row: a tiny family of it, built the way the CLI builds everything (config overrides).
KIND_ROWS = {
    "reinforcement": ["task.family=nav2d", "task.shots=2", "task.queries=2", "task.horizon=6",
                      "model.name=policy", "model.hidden=[8]"],
    "optimizer": ["task.family=quadratic", "task.dim=3", "task.horizon=6", "task.unroll=3",
                  "model.name=lstm_optimizer", "model.lstm_hidden=4"],
}
OTHER_KINDS = [a for a in ml.list_algorithms() if get_algorithm(a).trainable
               and "classification" not in get_algorithm(a).task_kinds]


def make_other(name, seed=0):
    from metalearn.config import Config, apply_overrides, validate
    from metalearn.training.build import build_algorithm, build_tasks

    (kind,) = [k for k in KIND_ROWS if k in get_algorithm(name).task_kinds]
    cfg = validate(apply_overrides(Config(), [*KIND_ROWS[kind], f"algo.name={name}", f"train.seed={seed}"]))
    family = build_tasks(cfg)
    return build_algorithm(cfg, family), family


def test_the_other_kinds_have_contract_rows():
    assert set(OTHER_KINDS) >= {"maml_trpo", "promp", "policy_pretrain", "l2l"}


@pytest.mark.parametrize("name", OTHER_KINDS)
def test_other_kinds_meta_gradient_is_finite_and_reaches_every_meta_parameter(name):
    algo, family = make_other(name)
    algo.on_step(0, 100)
    batch = algo.training_tasks(family).sample(2, torch.Generator().manual_seed(1))
    value = algo.meta_backward(batch)
    assert torch.isfinite(value)
    for pname, p in algo.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", OTHER_KINDS)
def test_other_kinds_outer_step_changes_the_weights_and_keeps_them_finite(name):
    algo, family = make_other(name)
    params = [p for p in algo.parameters() if p.requires_grad]
    opt = algo.outer_step(params, 1e-2) or torch.optim.Adam(params, lr=1e-2)
    before = [p.detach().clone() for p in params]
    batch = algo.training_tasks(family).sample(2, torch.Generator().manual_seed(1))
    opt.zero_grad()
    algo.meta_backward(batch)
    if getattr(opt, "uses_closure", False):
        opt.step(algo.closure(batch))
    else:
        opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, params))
    assert all(torch.isfinite(p).all() for p in params)


@pytest.mark.parametrize("name", OTHER_KINDS)
def test_other_kinds_checkpoint_round_trip(name, tmp_path):
    algo, family = make_other(name)
    batch = algo.training_tasks(family).sample(2, torch.Generator().manual_seed(1))
    algo.meta_backward(batch)
    torch.save(algo.state_dict(), tmp_path / "a.pt")
    other, _ = make_other(name, seed=1)
    other.load_state_dict(torch.load(tmp_path / "a.pt", weights_only=True))
    test = family.sample(2, torch.Generator().manual_seed(5))
    mine, theirs = algo.eval().adaptation_curve(test, 1), other.eval().adaptation_curve(test, 1)
    assert mine.shape == (2, 2) and torch.isfinite(mine).all()
    torch.testing.assert_close(mine, theirs)


def test_promp_is_maml_trpo_configured_with_the_proximal_outer_part():
    from metalearn.algorithms import MAMLTRPO, ProMP
    from metalearn.algorithms.rl.outer import Proximal, TrustRegion

    own = {n for n, v in vars(ProMP).items() if callable(v) and not n.startswith("__")}
    assert own == set(), f"ProMP overrides {own}; its outer step is a part"
    promp, family = make_other("promp")
    assert isinstance(promp.outer, Proximal) and isinstance(make_other("maml_trpo")[0].outer, TrustRegion)
    plain = MAMLTRPO(copy_model(promp.model), inner_lr=promp.inner_lr, estimator="lvc",
                     outer=Proximal(promp.outer.clip_eps, promp.outer.kl_penalty, promp.outer.outer_steps))
    batch = promp.training_tasks(family).sample(2, torch.Generator().manual_seed(3))
    torch.testing.assert_close(promp.meta_loss(batch), plain.meta_loss(batch))
    assert type(promp.outer_step(list(promp.parameters()), 1e-3)).__name__ == "RepeatedAdam"


def test_maml_trpo_is_maml_configured_with_the_trust_region_part():
    from metalearn.algorithms import MAML, MAMLTRPO
    from metalearn.algorithms.rl.outer import TrustRegion

    contract = {"meta_loss", "meta_backward", "closure", "adaptation_curve"}
    own = {n for n, v in vars(MAMLTRPO).items() if callable(v)} & contract
    assert own == set(), f"MAMLTRPO overrides {own}; it is MAML with batched collection and a trust region"
    trpo, family = make_other("maml_trpo")
    trpo = trpo.double()
    plain = MAML(copy_model(trpo.model), inner_lr=trpo.inner_lr, outer=TrustRegion(max_kl=trpo.outer.max_kl))
    batch = family.sample(3, torch.Generator().manual_seed(4))
    # the same meta-loss and meta-gradient, and the same trust-region step
    for algo in (trpo, plain):
        algo.zero_grad()
        algo.meta_backward(batch)
        algo.outer_step(list(algo.parameters()), 0.0).step(algo.closure(batch))
    for a, b in zip(trpo.parameters(), plain.parameters()):
        torch.testing.assert_close(a, b)
    assert not torch.equal(next(trpo.parameters()), next(make_other("maml_trpo")[0].double().parameters()))


def copy_model(model):
    import copy
    return copy.deepcopy(model)
