"""Meta-reinforcement learning: environment task families, batched episode collection, advantage
estimation, MAML-TRPO, ProMP and the pretrained policy baseline."""
import math

import pytest
import torch
from torch import nn

import metalearn as ml
from metalearn.algorithms import MAMLTRPO, PolicyPretrain, ProMP
from metalearn.algorithms.rl.trpo import TRPOStep, conjugate_gradient
from metalearn.functional import make_forward
from metalearn.models import GaussianPolicy
from metalearn.tasks import Nav2dTasks
from metalearn.tasks.rl.advantages import discounted_returns, gae, linear_baseline, normalize
from metalearn.tasks.rl.environments import EnvTasks


def tiny_policy(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return GaussianPolicy(2, 2, hidden=(8,), activation="tanh", init_std=0.5).to(dtype)


def small_nav(**kw):
    return Nav2dTasks(**{"episodes": 4, "horizon": 6, **kw})


# -- the environment and the collection -----------------------------------------------------------
def test_nav2d_follows_the_maml_paper_dynamics():
    fam = Nav2dTasks(episodes=2, horizon=3)
    env = fam.make_env(torch.tensor([[0.3, -0.2]]), 2)
    obs = env.reset([0])
    assert obs.shape == (1, 2, 2) and obs.abs().sum() == 0     # starts at the origin
    obs, reward, done = env.step(torch.tensor([[[0.5, -0.05], [0.0, 0.0]]]))
    torch.testing.assert_close(obs[0, 0], torch.tensor([0.1, -0.05]))   # clipped to +-0.1
    torch.testing.assert_close(reward[0, 0], -torch.tensor([0.2, 0.15]).norm())
    torch.testing.assert_close(reward[0, 1], -torch.tensor([0.3, 0.2]).norm())
    assert not done.any()
    env2 = fam.make_env(torch.tensor([[0.005, 0.0]]), 1)
    env2.reset([0])
    assert env2.step(torch.zeros(1, 1, 2))[2].all()   # within 0.01 of the goal: done


def test_standing_still_scores_the_papers_minus_38():
    fam = Nav2dTasks(episodes=1, horizon=100)
    goals = fam.sample_tasks(4000, torch.Generator().manual_seed(0))
    # reward -|goal| for 100 steps: the mean over goals is about -38.3 (the paper's scale)
    assert -39.5 < float(-100 * goals.norm(dim=1).mean()) < -37.0


def test_batched_collection_equals_collecting_each_task_alone():
    fam = small_nav()
    forward = make_forward(tiny_policy())
    params = dict(tiny_policy().named_parameters())
    tree = fam.sample(3, torch.Generator().manual_seed(1))
    batched = fam.collect(forward, params, tree.data["task"], [tree.generator(t) for t in range(3)], False, 4)
    for t in range(3):
        alone = fam.collect(forward, params, tree.data["task"][t:t + 1], [tree.generator(t)], False, 4)[0]
        for key in ("obs", "actions", "adv", "logp_old", "return"):
            torch.testing.assert_close(batched[t][key], alone[key])
    # per-task parameters (vmap) with every task given the same parameters: the same episodes
    stacked = {k: v.unsqueeze(0).expand(3, *v.shape) for k, v in params.items()}
    per_task = fam.collect(forward, stacked, tree.data["task"], [tree.generator(t) for t in range(3)], True, 4)
    for t in range(3):
        torch.testing.assert_close(per_task[t]["actions"], batched[t]["actions"])


def test_returns_gae_and_the_linear_baseline():
    rewards = torch.tensor([[[1.0, 2.0, 3.0], [1.0, 1.0, 0.0]]])
    mask = torch.tensor([[[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]])
    ret = discounted_returns(rewards, mask, 0.5)
    torch.testing.assert_close(ret[0, 0], torch.tensor([1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0]))
    torch.testing.assert_close(ret[0, 1], torch.tensor([1.5, 1.0, 0.0]))
    zero = torch.zeros_like(rewards)
    # lambda = 1 with no baseline: the advantages are the returns
    torch.testing.assert_close(gae(rewards, zero, mask, 0.5, 1.0), ret)
    # lambda = 0: one-step TD errors r + gamma V' - V
    values = torch.tensor([[[1.0, 1.0, 1.0], [2.0, 2.0, 0.0]]])
    td = gae(rewards, values, mask, 0.5, 0.0)
    torch.testing.assert_close(td[0, 0], torch.tensor([1 + 0.5 - 1, 2 + 0.5 - 1, 3 - 1.0]))
    # a baseline fitted on returns that are an exact function of its features reproduces them
    obs = torch.randn(2, 5, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.arange(7, dtype=torch.float64) / 100
    target = 2 * obs[..., 0] - obs[..., 1] ** 2 + 3 * t + 0.5
    m = torch.ones(2, 5, 7, dtype=torch.float64)
    # (up to the ridge regularisation's pull on the tiny time features)
    torch.testing.assert_close(linear_baseline(obs, target, m), target, atol=2e-3, rtol=0)
    adv = normalize(torch.randn(2, 5, 7), torch.ones(2, 5, 7))
    torch.testing.assert_close(adv.mean((1, 2)), torch.zeros(2), atol=1e-5, rtol=0)


# -- the meta-gradient --------------------------------------------------------------------------------
def fixed_episodes(algo, fam, tasks=2, seed=0):
    tree = fam.sample(tasks, torch.Generator().manual_seed(seed))
    algo.meta_loss(tree)            # collects the support and query episodes once
    return algo.closure(tree)       # re-evaluates on exactly those episodes


@pytest.mark.parametrize("mode", ["second_order", "first_order"])
def test_meta_gradient_matches_finite_differences_on_fixed_episodes(mode):
    algo = MAMLTRPO(tiny_policy(), inner_lr=0.3, mode=mode)
    closure = fixed_episodes(algo, small_nav())
    params = [p for p in algo.parameters()]
    loss = closure()
    grads = torch.autograd.grad(loss, params)
    eps = 1e-6
    for p, g in zip(params, grads):
        for idx in [(0,) * p.dim(), tuple(s - 1 for s in p.shape)]:
            old = p[idx].item()
            with torch.no_grad():
                p[idx] = old + eps
            up = float(closure().detach())
            with torch.no_grad():
                p[idx] = old - eps
            down = float(closure().detach())
            with torch.no_grad():
                p[idx] = old
            numeric = (up - down) / (2 * eps)
            if mode == "second_order":
                assert g[idx].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8), (p.shape, idx)
    if mode == "first_order":
        # first order treats the inner gradient as a constant: the gradient is that of the query
        # surrogate at the adapted parameters, which differs from the full derivative
        full = MAMLTRPO(tiny_policy(), inner_lr=0.3, mode="second_order")
        c2 = fixed_episodes(full, small_nav())
        g2 = torch.autograd.grad(c2(), list(full.parameters()))
        assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, g2))


def test_batched_meta_gradient_equals_the_per_task_reference_loop():
    """MAML-TRPO's batched collection gives the meta-gradient of the functional core's generic
    per-task loop over the same task loss (plain MAML on the same TaskTree), in float64."""
    fam = small_nav()
    tree = fam.sample(3, torch.Generator().manual_seed(4))
    fast = MAMLTRPO(tiny_policy(), inner_lr=0.2)
    ref = ml.MAML(tiny_policy(), inner_lr=0.2)
    fast.meta_backward(tree)
    ref.meta_backward(tree)
    for (name, a), b in zip(fast.model.named_parameters(), ref.model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12, msg=name)


class Shift(nn.Module):
    """A one-dimensional Gaussian policy N(mu, sigma^2) with a learned mean only."""

    def __init__(self, mu, sigma):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor([mu], dtype=torch.float64))
        self.register_buffer("log_std", torch.tensor([math.log(sigma)], dtype=torch.float64))

    def forward(self, obs):
        shape = (*obs.shape[:-1], 1)
        return torch.cat([self.mu.expand(shape), self.log_std.expand(shape)], -1)


class BanditEnv:
    def __init__(self, goals, episodes):
        self.goals = goals.view(-1, 1).expand(-1, episodes)

    def reset(self, seeds):
        return torch.zeros(*self.goals.shape, 1, dtype=torch.float64)

    def step(self, actions):
        reward = -(actions[..., 0] - self.goals) ** 2
        return torch.zeros_like(actions), reward, torch.ones_like(reward, dtype=torch.bool)


class Bandit(EnvTasks):
    """One-step Gaussian bandit, reward -(a - g)^2 with g = 0, advantages = rewards."""

    obs_dim, action_dim, task_dim = 1, 1, 1

    def sample_tasks(self, n, generator):
        return torch.zeros(n, 1, dtype=torch.float64)

    def make_env(self, tasks, episodes):
        return BanditEnv(tasks[:, 0], episodes)

    def process(self, obs, actions, rewards, mask, out, extra):
        data = super().process(obs, actions, rewards, mask, out, extra)
        for t, d in enumerate(data):
            d["adv"] = rewards[t]
        return data


def sampled_meta_gradient(estimator, samples, seed, theta=0.5, alpha=0.1, sigma=1.0):
    algo = MAMLTRPO(Shift(theta, sigma), inner_lr=alpha, estimator=estimator)
    fam = Bandit(episodes=samples, horizon=1)
    algo.meta_backward(fam.sample(1, torch.Generator().manual_seed(seed)))
    return float(algo.model.mu.grad)


def test_sampled_meta_gradient_converges_to_the_closed_form_only_with_the_correction_term():
    """One-step bandit a ~ N(theta, 1), reward -(a - g)^2 (g = 0): J(theta) = -(theta - g)^2 - 1, the
    inner step theta' = theta + alpha J'(theta), the meta-loss -J(theta'), whose gradient is
    2 (theta' - g)(1 - 2 alpha) = 0.64 at theta = 0.5, alpha = 0.1. The LVC/DiCE inner objective
    carries the term grad log pi grad log pi^T r of the sampling distribution and converges to it;
    the naive estimator drops it and converges to 2 (theta' - g)(1 + alpha ((theta - g)^2 + 1)) = 0.9."""
    theta, alpha = 0.5, 0.1
    exact = 2 * (theta - 2 * alpha * theta) * (1 - 2 * alpha)
    naive_limit = 2 * (theta - 2 * alpha * theta) * (1 + alpha * (theta ** 2 + 1))
    errors = {}
    for n in (1000, 100000):
        estimates = [sampled_meta_gradient("lvc", n, seed) for seed in range(4)]
        errors[n] = sum(abs(e - exact) for e in estimates) / len(estimates)
    assert errors[100000] < 0.02, errors
    assert errors[100000] < errors[1000], errors      # the error shrinks as the samples grow
    naive = sum(sampled_meta_gradient("naive", 100000, seed) for seed in range(4)) / 4
    assert abs(naive - naive_limit) < 0.03 and abs(naive - exact) > 0.2, (naive, naive_limit, exact)


# -- the outer steps ---------------------------------------------------------------------------------
def test_conjugate_gradient_solves_a_positive_definite_system():
    a = torch.randn(6, 6, dtype=torch.float64)
    a = a @ a.T + 6 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    torch.testing.assert_close(conjugate_gradient(lambda v: a @ v, b, iters=20), torch.linalg.solve(a, b))


def test_trpo_step_lowers_the_surrogate_within_its_kl_bound():
    algo = MAMLTRPO(tiny_policy(), inner_lr=0.2, max_kl=0.01)
    fam = small_nav(episodes=10, horizon=10)
    tree = fam.sample(3, torch.Generator().manual_seed(2))
    algo.meta_backward(tree)
    closure = algo.closure(tree)
    before, kl0 = closure.values()
    assert kl0 == pytest.approx(0.0, abs=1e-12)
    step = algo.outer_step(list(algo.parameters()), 0.0)
    assert isinstance(step, TRPOStep)
    step.step(closure)
    after, kl = closure.values()
    assert after < before and 0 < kl <= 0.01 + 1e-9, (before, after, kl)
    assert step.last["kl"] == pytest.approx(kl)
    # a tighter bound takes a smaller step
    tight = MAMLTRPO(tiny_policy(), inner_lr=0.2, max_kl=1e-4)
    tight.meta_backward(tree)
    c2 = tight.closure(tree)
    tight.outer_step(list(tight.parameters()), 0.0).step(c2)
    assert 0 < c2.values()[1] <= 1e-4 + 1e-12


def test_promp_takes_several_proximal_steps_on_the_same_episodes():
    algo = ProMP(tiny_policy(dtype=torch.float32), inner_lr=0.2, outer_steps=3, clip_eps=0.2)
    fam = small_nav(episodes=10, horizon=10)
    tree = fam.sample(3, torch.Generator().manual_seed(2))
    algo.meta_backward(tree)
    closure = algo.closure(tree)
    start = float(closure().detach())
    opt = algo.outer_step([p for p in algo.parameters()], 1e-2)
    opt.step(closure)
    assert opt.state[algo.model.log_std]["step"] == 3
    assert float(closure().detach()) < start      # the clipped surrogate (plus KL penalty) went down
    # the clipped objective: far beyond the clip range, pushing further does not pay
    support, q = algo._collected[0]
    fast, _ = ml.functional.adapt_task(algo._forward, tree, 0, algo.params(), algo.inner_rule(), 1, support=support)
    assert torch.isfinite(tree.task_loss.clipped_loss(algo._forward, fast, q, 0.2))


class EachTask:
    """The environment family's task loss without its batched collection: the per-task reference."""

    on_policy = True

    def __init__(self, loss):
        self.inner = loss

    def with_estimator(self, estimator):
        return EachTask(self.inner.with_estimator(estimator))

    def __getattr__(self, name):
        if name in ("support_batch", "query_batch"):
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_batched_collection_gives_the_per_task_loops_meta_gradient_closure_and_curve():
    import dataclasses
    fam = small_nav(episodes=3, horizon=5)
    tree = fam.sample(3, torch.Generator().manual_seed(6))
    each = dataclasses.replace(tree, task_loss=EachTask(tree.task_loss))
    assert isinstance(tree.task_loss, ml.protocols.BatchedCollection)
    assert not isinstance(each.task_loss, ml.protocols.BatchedCollection)
    out = {}
    for name, batch in (("batched", tree), ("each", each)):
        algo = MAMLTRPO(tiny_policy(), inner_lr=0.2)
        loss = algo.meta_backward(batch)
        grads = [p.grad.clone() for p in algo.parameters()]
        closure = algo.closure(batch)
        out[name] = (loss, grads, closure().detach(), closure.kl().detach(), algo.last_metrics,
                     algo.adaptation_curve(batch, 2, metric="return"))
    (l1, g1, c1, k1, m1, r1), (l2, g2, c2, k2, m2, r2) = out["batched"], out["each"]
    torch.testing.assert_close(l1, l2, rtol=1e-10, atol=1e-12)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(c1, l1, rtol=1e-10, atol=1e-12)   # the closure re-uses the episodes
    torch.testing.assert_close(k1, k2, rtol=1e-9, atol=1e-14)
    assert set(m1) == set(m2) == {"return_before", "return", "env_steps", "sample_seconds"}
    assert m1["env_steps"] == m2["env_steps"] > 0
    assert m1["return"] == pytest.approx(m2["return"], rel=1e-9)
    torch.testing.assert_close(r1, r2, rtol=1e-9, atol=1e-9)
    assert r1.shape == (3, 3) and not torch.equal(r1[:, 0], r1[:, 2])   # adaptation changed the returns


# -- training, checkpoints, evaluation ---------------------------------------------------------------
def tiny_config(algo="maml_trpo", steps=2):
    from metalearn.config import apply_overrides, load_preset, validate
    return validate(apply_overrides(load_preset("rl-nav2d"), [
        f"algo.name={algo}", f"train.steps={steps}", "train.meta_batch=3", "task.shots=4", "task.horizon=8",
        "train.val_tasks=4", "train.val_every=1", "train.ckpt_every=1", "model.hidden=[16]", "eval.tasks=4",
        "eval.steps=[1,2]"]))


def test_training_resumes_bit_identically_and_checkpoints_round_trip(tmp_path):
    from metalearn.training.build import build_trainer
    from metalearn.training.loading import load_algorithm
    from metalearn.runs import Run
    cfg = tiny_config(steps=3)
    straight = build_trainer(cfg, tmp_path / "a", progress=False)
    straight.run()
    cfg2 = tiny_config(steps=2)
    build_trainer(cfg2, tmp_path / "b", progress=False).run()
    resumed = build_trainer(cfg, tmp_path / "b", progress=False)
    resumed.run(resume=True)
    for (name, a), b in zip(straight.algorithm.state_dict().items(), resumed.algorithm.state_dict().values()):
        assert torch.equal(a, b), name
    loaded = load_algorithm(Run(tmp_path / "a"), cfg, "last")
    for a, b in zip(loaded.state_dict().values(), straight.algorithm.state_dict().values()):
        assert torch.equal(a, b)
    rows = Run(tmp_path / "a").read_metrics()
    assert {"train_return", "train_return_before", "val_return", "env_steps_per_s"} <= set(rows[-1])


def test_the_pretrained_baseline_trains_without_an_inner_step(tmp_path):
    from metalearn.training.build import build_trainer
    cfg = tiny_config("policy_pretrain")
    trainer = build_trainer(cfg, tmp_path / "p", progress=False)
    assert isinstance(trainer.algorithm, PolicyPretrain) and trainer.algorithm.train_steps == 0
    before = [p.detach().clone() for p in trainer.algorithm.parameters()]
    trainer.run()
    assert "return_before" not in trainer.algorithm.last_metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.algorithm.parameters()))
    # it still adapts at test time with the configured policy-gradient steps
    curve = trainer.algorithm.adaptation_curve(small_nav().sample(2, torch.Generator().manual_seed(0)), 2)
    assert curve.shape == (2, 3) and torch.isfinite(curve).all()


def test_adapt_policy_gives_a_callable_policy_that_moves_toward_the_goal():
    torch.manual_seed(0)
    algo = MAMLTRPO(GaussianPolicy(2, 2, (32,), init_std=0.3), inner_lr=0.5)
    fam = Nav2dTasks(episodes=40, horizon=20)
    goal = torch.tensor([0.4, 0.4])
    episodes, _ = algo.adaptation_episodes(fam, goal, steps=3, seed=0)
    policy = algo.adapt_policy(fam, goal, steps=3, seed=0)
    action = policy(torch.zeros(1, 2))
    assert action.shape == (1, 2) and policy.sample(torch.zeros(5, 2)).shape == (5, 2)
    # three vanilla policy-gradient steps improve the return of a random policy on this goal
    assert float(episodes[-1]["return"]) > float(episodes[0]["return"]), [float(e["return"]) for e in episodes]


@pytest.mark.parametrize("family", ["HalfCheetahVel", "HopperParams"])
def test_asynchronous_workers_give_the_same_episodes_as_the_synchronous_vector(family):
    pytest.importorskip("mujoco")
    from metalearn.tasks.rl import mujoco
    cls = getattr(mujoco, family)
    torch.manual_seed(0)
    probe = cls(episodes=3, horizon=5)
    policy = GaussianPolicy(probe.obs_dim, probe.action_dim, (8,))
    forward, params = make_forward(policy), dict(policy.named_parameters())
    out = {}
    for mode in ("sync", "async"):
        # 2 tasks x 3 episodes over 4 workers: shards of 1 and 2 sub-environments, cutting across tasks
        fam = cls(episodes=3, horizon=5, vector=mode, workers=4)
        tree = fam.sample(2, torch.Generator().manual_seed(3))
        out[mode] = fam.collect(forward, params, tree.data["task"], [tree.generator(0), tree.generator(1)], False, 3)
        for env in fam._envs.values():
            env.close()
        fam._envs.clear()
    for t in range(2):
        for key in ("obs", "rewards", "actions", "mask"):
            torch.testing.assert_close(out["sync"][t][key], out["async"][t][key])
    if family == "HalfCheetahVel":   # the velocity task's reward: -|v - v*| - 0.05 |a|^2, at most 0
        assert (out["sync"][0]["rewards"] <= 0).all()
    else:   # each task's physics reach its sub-environments in the workers: the two tasks differ
        assert not torch.equal(out["async"][0]["obs"], out["async"][1]["obs"])


@pytest.mark.parametrize("vector", ["sync", "async"])
def test_ended_episodes_are_not_stepped_and_the_live_steps_are_unchanged(monkeypatch, vector):
    pytest.importorskip("mujoco")
    from metalearn.tasks.rl.mujoco import GymVectorEnv, HopperParams
    torch.manual_seed(0)
    probe = HopperParams(episodes=3, horizon=40)
    policy = GaussianPolicy(probe.obs_dim, probe.action_dim, (8,), init_std=1.0)
    forward, params = make_forward(policy), dict(policy.named_parameters())

    def collect() -> list[dict[str, torch.Tensor]]:
        fam = HopperParams(episodes=3, horizon=40, vector=vector, workers=2)
        tree = fam.sample(2, torch.Generator().manual_seed(1))
        data = fam.collect(forward, params, tree.data["task"], [tree.generator(0), tree.generator(1)], False, 3)
        for env in fam._envs.values():
            env.close()
        return data

    skipping = collect()
    original = GymVectorEnv.step
    monkeypatch.setattr(GymVectorEnv, "step", lambda self, actions, live=None: original(self, actions))
    stepping_all = collect()   # every sub-environment stepped (and reset after its end), as gymnasium does
    assert any(float(d["mask"].mean()) < 0.9 for d in skipping)   # the hopper falls: some episodes end early
    for a, b in zip(skipping, stepping_all):
        live = a["mask"]
        torch.testing.assert_close(a["mask"], b["mask"], rtol=0, atol=0)
        for key in ("obs", "actions"):
            torch.testing.assert_close(a[key] * live.unsqueeze(-1), b[key] * live.unsqueeze(-1), rtol=0, atol=0)
        for key in ("rewards", "adv"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_a_sub_environment_left_out_of_a_step_keeps_its_state():
    pytest.importorskip("mujoco")
    from metalearn.tasks.rl.mujoco import HopperParams
    fam = HopperParams(episodes=2, horizon=10)
    env = fam.make_env(torch.zeros(1, fam.task_dim, dtype=torch.float64), 2)
    first = env.reset([3])
    obs, reward, done = env.step(torch.ones(1, 2, 3), torch.tensor([[True, False]]))
    times = [sub.unwrapped.data.time for sub in env.env.envs]
    assert times[0] > 0 and times[1] == 0   # only the live one moved
    assert not torch.equal(obs[0, 0], first[0, 0]) and torch.equal(obs[0, 1], first[0, 1])
    assert float(reward[0, 1]) == 0 and bool(done[0, 1]) and float(reward[0, 0]) != 0


def test_mujoco_warnings_leave_no_log_file_in_the_working_directory(tmp_path, monkeypatch):
    pytest.importorskip("mujoco")
    from metalearn.tasks.rl.mujoco import HalfCheetahDir
    monkeypatch.chdir(tmp_path)
    policy = GaussianPolicy(18, 6, (8,))   # with the torso x position
    fam = HalfCheetahDir(episodes=1, horizon=2)
    tree = fam.sample(1, torch.Generator().manual_seed(0))
    fam.collect(make_forward(policy), dict(policy.named_parameters()), tree.data["task"], [tree.generator(0)], False, 1)
    # HalfCheetah-v5's XML makes MuJoCo warn (a deprecated attribute); its default handler would
    # append that to MUJOCO_LOG.TXT here
    assert list(tmp_path.iterdir()) == []


def test_the_ant_direction_reward_uses_rllabs_weights_not_ant_v5s():
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("mujoco")
    from metalearn.tasks.rl.mujoco import AntDir
    fam = AntDir(episodes=1, horizon=30)
    env = fam.make_env(torch.tensor([[-1.0]], dtype=torch.float64), 1)
    env.reset([7])
    ref = gym.make("Ant-v5", max_episode_steps=30)
    ref.reset(seed=7000)   # the vector environment seeds sub-environment i of seed s with s * 1000 + i
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        a = torch.rand(1, 1, 8, generator=gen, dtype=torch.float64) * 2 - 1
        _, r, done = env.step(a)
        _, ref_r, terminated, truncated, info = ref.step(a[0, 0].numpy())
        # backward: -v_x, a control cost of 0.005 |a|^2 (Ant-v5's own is 0.5 |a|^2), Ant-v5's contact
        # cost, and 0.05 while healthy (Ant-v5's own bonus is 1)
        want = -info["x_velocity"] - 0.005 * float(a.pow(2).sum()) + info["reward_contact"] + 0.05 * (not terminated)
        assert float(r) == pytest.approx(want, abs=1e-9)
        assert float(r) != pytest.approx(ref_r, abs=1e-3)
        if terminated or truncated:
            break


def test_the_goal_families_observe_the_torso_position_as_mamls_environments_do():
    pytest.importorskip("mujoco")
    from metalearn.tasks.rl.mujoco import AntGoal, HalfCheetahDir, HopperParams
    cheetah = HalfCheetahDir(episodes=1, horizon=40)
    policy = GaussianPolicy(cheetah.obs_dim, cheetah.action_dim, (8,))
    tree = cheetah.sample(1, torch.Generator().manual_seed(0))
    data = cheetah.collect(make_forward(policy), dict(policy.named_parameters()), tree.data["task"],
                           [tree.generator(0)], False, 1)[0]
    # HalfCheetah-v5 gives 17 numbers without the x position; the first is x here: it moves by the
    # rewarded velocity d (x' - x) / dt (reward = d v - 0.05 |a|^2, dt = 0.05) at every step
    assert cheetah.obs_dim == 18
    obs, d = data["obs"][0], float(tree.data["task"][0, 0])
    v = d * (data["rewards"][0] + 0.05 * data["actions"][0].clamp(-1, 1).pow(2).sum(-1))
    torch.testing.assert_close(obs[1:, 0] - obs[:-1, 0], 0.05 * v[:-1], atol=1e-5, rtol=1e-4)
    assert (obs[1:, 0] - obs[:-1, 0]).abs().max() > 1e-3
    assert AntGoal(episodes=1, horizon=2).obs_dim == 107    # Ant-v5's 105 and the torso's x and y
    assert HopperParams(episodes=1, horizon=2).obs_dim == 11   # the physics families keep the default


def test_environment_workers_survive_ctrl_c_and_end_with_their_parent():
    pytest.importorskip("mujoco")
    import os
    import signal
    from metalearn.tasks.rl.env_workers import ShardedVectorEnv
    env = ShardedVectorEnv("Hopper-v5", 4, 10, {}, workers=2)
    try:
        env.reset([0, 1, 2, 3])
        for proc in env.procs:   # Ctrl-C in a terminal reaches every process of the group
            os.kill(proc.pid, signal.SIGINT)
        obs, reward, *_ = env.step(torch.zeros(4, 3).numpy())   # the trainer stops between steps: they go on
        assert obs.shape == (4, 11) and all(proc.is_alive() for proc in env.procs)
    finally:
        env.close()
    assert not any(proc.is_alive() for proc in env.procs)


def test_environment_workers_default_to_the_cores_this_process_may_use(monkeypatch):
    import os
    from metalearn.tasks.rl.env_workers import available_cores
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert available_cores() == cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * cores))   # more torchrun processes than cores: one each
    assert available_cores() == 1


def test_environment_workers_end_when_their_parent_is_killed(tmp_path):
    pytest.importorskip("mujoco")
    import os
    import signal
    import subprocess
    import sys
    import time
    script = ("import sys\nfrom metalearn.tasks.rl.env_workers import ShardedVectorEnv\n"
              "env = ShardedVectorEnv('Hopper-v5', 4, 10, {}, workers=2)\n"
              "print(' '.join(str(p.pid) for p in env.procs), flush=True)\nsys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    proc.send_signal(signal.SIGKILL)   # no chance to close its workers
    proc.wait()

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as f:   # a zombie waiting for its new parent counts as gone
            return f.read().split(")")[-1].split()[0] == "Z"

    deadline = time.time() + 15
    while not all(gone(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    assert all(gone(p) for p in pids)
    proc.stdin.close()


@pytest.mark.parametrize("vector", ["sync", "async"])
def test_an_ant_step_with_some_or_all_episodes_ended_rewards_the_live_ones(vector):
    pytest.importorskip("mujoco")
    from metalearn.tasks.rl.mujoco import AntDir
    task = torch.tensor([[1.0]], dtype=torch.float64)
    ref_env = AntDir(episodes=4, horizon=10).make_env(task, 4)
    fam = AntDir(episodes=4, horizon=10, vector=vector, workers=2)   # shards of 2: the second all ended
    env = fam.make_env(task, 4)
    try:
        ref_env.reset([0])
        first = env.reset([0])
        actions = torch.rand(1, 4, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
        _, want, _ = ref_env.step(actions)   # every sub-environment stepped
        obs, reward, done = env.step(actions, torch.tensor([[True, False, False, False]]))
        assert float(reward[0, 0]) == pytest.approx(float(want[0, 0]), abs=1e-12)   # the ant's reward terms, from info
        # the ended ones count as ended and keep their observation (the rollout masks their rewards)
        assert done[0, 1:].all() and torch.equal(obs[0, 1:], first[0, 1:])
        # every episode ended (an ant that fell in each): nothing stepped, no error
        before = obs
        obs, reward, done = env.step(actions, torch.zeros(1, 4, dtype=torch.bool))
        assert done.all() and torch.equal(obs, before) and torch.isfinite(reward).all()
    finally:
        env.close()
        ref_env.close()
