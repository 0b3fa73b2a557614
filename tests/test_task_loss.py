"""The task-loss contract, proven by two families written here, only against
``metalearn.protocols`` (``TaskFamily``, ``TaskLoss``) and ``metalearn.TaskTree``, with no change
to the functional core:

* ``RaggedLines``: regression tasks with different numbers of rows, padded with masks and weighted
  by their query rows in the meta-batch mean (one task per patient or site, in miniature);
* ``PointGoal``: a point that must reach an unseen goal (the MAML paper's 2D navigation, in
  miniature): the support episodes are sampled with the policy before adaptation and the query
  episodes with the adapted policy, the loss is a policy-gradient surrogate, and the outer step is
  a line search that re-evaluates the meta-loss through a closure.

Both train with MAML through the ordinary trainer.
"""

import pytest
import torch
import torch.nn.functional as F

import metalearn as ml
from metalearn import Metric, TaskTree
from metalearn.protocols import TaskFamily, TaskLoss
from metalearn.runs import load_checkpoint

# -- a ragged, masked, weighted regression family ----------------------------------------------


class MaskedMSE:
    """Mean squared error over a task's rows that the mask keeps."""

    def support(self, forward, params, task, generator):
        return task["x"], task["y"], task["support"]

    def query(self, forward, params, task, generator):
        return task["x"], task["y"], task["query"]

    def loss(self, forward, params, data):
        x, y, mask = data
        err = (forward(params, x) - y).pow(2).squeeze(-1)
        return (err * mask).sum() / mask.sum()

    def metrics(self, forward, params, data):
        return {}


class RaggedLines:
    """Lines ``y = a x + b``, each task with 4 to 12 rows: the first half support, the rest query."""

    kind = "regression"
    metric = Metric("mse", higher_is_better=False)
    evaluator = "adaptation"
    pictures = ("steps",)
    adapt_input = None
    baseline = None
    uses_task_loss = True
    rows = 12

    def sample(self, n, generator=None):
        a = torch.rand(n, 1, 1, generator=generator) * 4 - 2
        b = torch.rand(n, 1, 1, generator=generator) * 2 - 1
        count = torch.randint(4, self.rows + 1, (n, 1), generator=generator)
        x = torch.rand(n, self.rows, 1, generator=generator) * 2 - 1
        index = torch.arange(self.rows).unsqueeze(0)
        support = index < count // 2
        query = (index < count) & ~support
        x = torch.where((index < count).unsqueeze(-1), x, torch.full_like(x, 1e3))  # padding: far off
        data = {"x": x, "y": a * x + b, "support": support.float(), "query": query.float()}
        return TaskTree(data, MaskedMSE(), weights=query.sum(1).float())


def test_the_families_satisfy_the_protocols():
    assert isinstance(RaggedLines(), TaskFamily) and isinstance(PointGoal(), TaskFamily)
    assert isinstance(MaskedMSE(), TaskLoss) and isinstance(PolicyGradient(), TaskLoss)


def ragged_setup(dtype=torch.float64):
    torch.manual_seed(0)
    algo = ml.MAML(ml.mlp(1, [16], 1, "tanh"), inner_lr=0.1, inner_steps=2).to(dtype)
    tree = RaggedLines().sample(5, torch.Generator().manual_seed(1)).to(dtype=dtype)
    return algo, tree


def test_masked_weighted_meta_loss_equals_a_loop_over_the_unpadded_tasks():
    algo, tree = ragged_setup()
    params = algo.params()
    total, weight = 0.0, 0.0
    for t in range(tree.num_tasks):
        d = tree.task(t)
        s, q = d["support"].bool(), d["query"].bool()
        p = params
        for _ in range(2):
            loss = F.mse_loss(algo._forward(p, d["x"][s]), d["y"][s])
            g = torch.autograd.grad(loss, list(p.values()), create_graph=True)
            p = {k: v - 0.1 * gi for (k, v), gi in zip(p.items(), g)}
        w = float(q.sum())
        total = total + w * F.mse_loss(algo._forward(p, d["x"][q]), d["y"][q])
        weight += w
    reference = total / weight
    value = algo.meta_loss(tree)
    torch.testing.assert_close(value, reference, rtol=1e-12, atol=0)
    ours = torch.autograd.grad(value, list(params.values()))
    theirs = torch.autograd.grad(reference, list(params.values()))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_ragged_meta_gradient_matches_finite_differences(fd_check):
    algo, tree = ragged_setup()
    fd_check(lambda: algo.meta_loss(tree), list(algo.parameters()))


def test_meta_backward_equals_backward_of_the_meta_loss_on_task_trees():
    grads = {}
    for how in ("meta_loss", "meta_backward"):
        algo, tree = ragged_setup()
        value = algo.meta_backward(tree, scale=0.5) if how == "meta_backward" else algo.meta_loss(tree)
        if how == "meta_loss":
            (0.5 * value).backward()
        grads[how] = (float(value.detach()), [p.grad.clone() for p in algo.parameters()])
    assert grads["meta_backward"][0] == pytest.approx(grads["meta_loss"][0], rel=1e-12)
    for a, b in zip(grads["meta_backward"][1], grads["meta_loss"][1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_a_shard_keeps_its_tasks_weights():
    _, tree = ragged_setup()
    left, right = tree[:2], tree[2:]
    assert left.total_weight + right.total_weight == pytest.approx(tree.total_weight)
    assert left.num_tasks == 2 and torch.equal(left.data["x"], tree.data["x"][:2])


class Recorder:
    def __init__(self, stop_at=None):
        self.steps, self.rows, self.stop_at = [], [], stop_at

    def on_step(self, trainer, step, loss):
        self.steps.append(step)

    def on_validation(self, trainer, step, row):
        self.rows.append((step, row))
        return step == self.stop_at


def test_maml_trains_ragged_tasks_with_callbacks_and_resumes_after_a_callback_stop(tmp_path):
    def trainer(out, callbacks=()):
        torch.manual_seed(0)
        algo = ml.MAML(ml.mlp(1, [16], 1, "tanh"), inner_lr=0.1, inner_steps=1)
        return ml.Trainer(algo, RaggedLines(), out, steps=150, meta_batch=8, lr=0.01, val_tasks=32, val_every=50,
                          log_every=50, ckpt_every=50, progress=False, callbacks=callbacks)

    rec = Recorder()
    full = trainer(tmp_path / "full", [rec])
    before = full.validate()["val_loss"]
    result = full.run()
    assert rec.steps == list(range(1, 151)) and [s for s, _ in rec.rows] == [50, 100, 150]
    assert result.best_val < 0.8 * before, (before, result.best_val)  # 0.506 -> 0.330 here
    # a callback asks to stop at step 50: a checkpoint is written, and a resume ends where the full run did
    stopper = Recorder(stop_at=50)
    first = trainer(tmp_path / "cut", [stopper]).run()
    assert first.stopped and first.step == 50
    assert load_checkpoint(tmp_path / "cut/checkpoints/last.pt")["step"] == 50
    second = trainer(tmp_path / "cut").run(resume=True)
    assert second.step == 150
    a = load_checkpoint(tmp_path / "full/checkpoints/last.pt")["model"]
    b = load_checkpoint(tmp_path / "cut/checkpoints/last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- a point that must find its goal: meta-RL in miniature -------------------------------------


class PolicyGradient:
    """Episodes of a Gaussian policy (mean from the model, fixed std) from the origin toward a goal
    it does not see; reward minus the distance to the goal. The loss is the importance-weighted
    policy-gradient surrogate with a per-time-step baseline: its gradient at the collecting
    parameters is REINFORCE's, and a line search can re-evaluate it at other parameters on the same
    episodes."""

    def __init__(self, episodes=10, horizon=8, std=0.1):
        self.episodes, self.horizon, self.std = episodes, horizon, std

    def _logp(self, forward, params, obs, acts):
        mean = forward(params, obs)
        return (-0.5 * ((acts - mean) / self.std) ** 2).sum(-1)

    @torch.no_grad()
    def _rollout(self, forward, params, task, generator):
        pos = torch.zeros(self.episodes, 2)
        obs, acts, rews = [], [], []
        for _ in range(self.horizon):
            a = forward(params, pos) + self.std * torch.randn(self.episodes, 2, generator=generator)
            obs.append(pos)
            acts.append(a)
            pos = pos + a.clamp(-0.1, 0.1)
            rews.append(-(pos - task["goal"]).norm(dim=-1))
        obs, acts, rews = torch.stack(obs, 1), torch.stack(acts, 1), torch.stack(rews, 1)
        to_go = rews.flip(1).cumsum(1).flip(1)
        adv = to_go - to_go.mean(0, keepdim=True)
        return {"obs": obs, "acts": acts, "adv": adv / (adv.std() + 1e-8),
                "logp_old": self._logp(forward, params, obs, acts), "return": rews.sum(1).mean()}

    support = query = _rollout

    def loss(self, forward, params, data):
        ratio = torch.exp(self._logp(forward, params, data["obs"], data["acts"]) - data["logp_old"])
        return -(ratio * data["adv"]).mean()

    def metrics(self, forward, params, data):
        return {"return": data["return"]}


class PointGoal:
    kind = "reinforcement"
    metric = Metric("return", higher_is_better=True, key="return", short="return")
    evaluator = "adaptation"
    pictures = ("steps",)
    adapt_input = None
    baseline = None
    uses_task_loss = True

    def sample(self, n, generator=None):
        goals = torch.rand(n, 2, generator=generator) - 0.5
        seeds = torch.randint(2**62, (n,), generator=generator)
        return TaskTree({"goal": goals}, PolicyGradient(), seeds=seeds)


class LineSearchStep(torch.optim.Optimizer):
    """Gradient descent with a backtracking line search on the meta-loss, re-evaluated through the
    trainer's closure on the same episodes: the shape of a TRPO step."""

    uses_closure = True

    def __init__(self, params, lr=1.0, shrink=0.5, tries=5):
        super().__init__(params, dict(lr=lr))
        self.shrink, self.tries, self.evaluations, self.accepted = shrink, tries, 0, 0

    def step(self, closure):
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        start = [p.detach().clone() for p in params]
        base = float(closure().detach())
        size = self.param_groups[0]["lr"]
        for _ in range(self.tries):
            with torch.no_grad():
                for p, s in zip(params, start):
                    p.copy_(s - size * p.grad)
            self.evaluations += 1
            if float(closure().detach()) < base:
                self.accepted += 1
                return
            size *= self.shrink
        with torch.no_grad():
            for p, s in zip(params, start):
                p.copy_(s)


def policy():
    torch.manual_seed(0)
    return ml.MAML(ml.mlp(2, [32], 2, "tanh"), inner_lr=0.005, inner_steps=1)


def test_the_closure_re_evaluates_the_meta_loss_on_the_same_episodes():
    algo = policy()
    tree = PointGoal().sample(4, torch.Generator().manual_seed(0))
    value = algo.meta_backward(tree)
    closure = algo.closure(tree)
    again = closure().detach()
    assert float(again) == pytest.approx(float(value), rel=1e-6)
    assert float(closure().detach()) == float(again)  # same episodes each time: deterministic
    with torch.no_grad():
        for p in algo.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert float(closure().detach()) != float(again)
    assert algo.task_metrics["return"].shape == (4,)


def test_support_and_query_episodes_come_from_the_parameters_before_and_after_adaptation():
    algo = policy()
    tree = PointGoal().sample(2, torch.Generator().manual_seed(0))
    algo.meta_backward(tree)
    (support, query), _ = algo._collected
    # the query episodes were collected with the adapted policy: their stored log-probabilities
    # are those of the adapted parameters, not of the initial ones
    fast, _ = ml.functional.adapt_task(algo._forward, tree, 0, algo.params(), algo.inner_rule(), 1,
                                       support=support)
    pg = tree.task_loss
    adapted = pg._logp(algo._forward, fast, query["obs"], query["acts"])
    initial = pg._logp(algo._forward, algo.params(), query["obs"], query["acts"])
    torch.testing.assert_close(adapted.detach(), query["logp_old"], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(initial.detach(), query["logp_old"], atol=1e-3)


def test_maml_meta_trains_a_point_goal_policy_with_a_line_search_outer_step(tmp_path):
    algo = policy()
    step = LineSearchStep([p for p in algo.parameters() if p.requires_grad])
    rec = Recorder()
    trainer = ml.Trainer(algo, PointGoal(), tmp_path / "nav", steps=40, meta_batch=8, lr=0.01, val_tasks=24,
                         val_every=20, log_every=20, ckpt_every=20, progress=False, outer_step=step, callbacks=[rec])
    assert trainer.select == "val_return" and trainer.higher_is_better
    before = trainer.validate()["val_return"]
    result = trainer.run()
    after = [row["val_return"] for _, row in rec.rows]
    assert step.evaluations >= 40 and step.accepted >= 20, (step.evaluations, step.accepted)
    # the return after one adaptation step on the validation tasks rose with meta-training (-3.7 -> -2.6 here)
    assert result.best_val == max(after) and max(after) > before + 0.5, (before, after)
    # and on new tasks, the one policy-gradient step of adaptation now pays (-3.4 -> -2.4 here)
    curve = algo.adaptation_curve(PointGoal().sample(24, torch.Generator().manual_seed(9)), 1, metric="return")
    assert curve.shape == (24, 2) and curve[:, 1].mean() > curve[:, 0].mean() + 0.5, curve.mean(0)
