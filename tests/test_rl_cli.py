"""Meta-RL from the CLI: every preset trains a few iterations, evaluate scores the return before
and after adaptation beside both baselines, report draws the pictures; bad input is one line."""
import json
import sys

import pytest
import torch
import yaml
from cli_helpers import cli_error

from metalearn.cli.main import main

TINY = ["--quiet", "--set", "train.meta_batch=2", "--set", "task.shots=2", "--set", "task.horizon=10",
        "--set", "train.val_tasks=2", "--set", "train.val_every=2", "--set", "train.ckpt_every=2",
        "--set", "model.hidden=[16]", "--set", "eval.tasks=4", "--set", "eval.steps=[1,2]"]


@pytest.fixture(scope="module")
def nav_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rl") / "nav"
    assert main(["train", "rl-nav2d", "--out", str(out), "--steps", "2", *TINY]) == 0
    return out


def test_nav2d_train_evaluate_report(nav_run, capsys):
    assert main(["evaluate", str(nav_run), "--quiet"]) == 0
    out = capsys.readouterr().out
    result = json.loads((nav_run / "eval/eval_k2.json").read_text())
    assert result["metric"] == "return" and result["steps"] == [0, 1, 2]
    assert set(result["methods"]) == {"maml_trpo", "pretrained baseline", "random-init baseline"}
    assert set(result["paired"]) == {"maml_trpo - pretrained baseline", "maml_trpo - random-init baseline"}
    assert all(len(m["mean"]) == 3 for m in result["methods"].values())
    assert "Query return on 4 held-out tasks" in out
    # each method's gain from adaptation, paired on the same tasks: the mean of the per-task gains is
    # the difference of the means, zero before adaptation
    assert set(result["gain"]) == set(result["methods"])
    for name, gain in result["gain"].items():
        means = result["methods"][name]["mean"]
        assert gain["mean"][0] == 0 and gain["ties"][0] == 4
        for s in (1, 2):
            assert gain["mean"][s] == pytest.approx(means[s] - means[0], abs=1e-9)
            assert gain["wins"][s] + gain["losses"][s] + gain["ties"][s] == 4
    assert "Gain from adaptation on the same 4 tasks" in out
    # the pretrained baseline trained as many meta-iterations as the run, with no inner step
    rows = [json.loads(line) for line in (nav_run / "baseline/metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 2 and "train_return_before" not in rows[-1]
    assert main(["report", str(nav_run), "--quiet"]) == 0
    for name in ("training.png", "paths.png", "steps.png"):
        assert (nav_run / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_the_metrics_log_the_trust_region_steps(nav_run):
    """Each row says how far the TRPO step went: the KL it reached (within the bound), the surrogate's
    improvement, and the line search's fraction of the full step (0 when every try was rejected)."""
    max_kl = yaml.safe_load((nav_run / "config.yaml").read_text())["algo"]["max_kl"]
    rows = [json.loads(line) for line in (nav_run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert 0 <= row["train_outer_kl"] <= max_kl
        assert 0 <= row["train_outer_step_size"] <= 1
        if row["train_outer_step_size"] > 0:
            assert row["train_outer_improvement"] > 0 and row["train_outer_kl"] > 0
        else:
            assert row["train_outer_improvement"] == 0 and row["train_outer_kl"] == 0


@pytest.mark.parametrize("preset", ["rl-halfcheetah-dir", "rl-halfcheetah-vel", "rl-ant-dir", "rl-hopper-params",
                                    "rl-minigrid"])
def test_every_environment_preset_trains_a_few_iterations(tmp_path, preset):
    pytest.importorskip("minigrid" if "minigrid" in preset else "mujoco")
    assert main(["train", preset, "--out", str(tmp_path / "r"), "--steps", "2", *TINY]) == 0
    rows = [json.loads(line) for line in (tmp_path / "r/metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["train_return"])) for r in rows)
    metric = "success" if "minigrid" in preset else "return"
    assert f"val_{metric}" in rows[-1] and f"train_{metric}_before" in rows[-1]


def test_promp_trains_from_the_cli(tmp_path):
    assert main(["train", "rl-nav2d", "--algo", "promp", "--out", str(tmp_path / "p"), "--steps", "2", *TINY]) == 0


def test_a_mujoco_report_has_a_clip_of_the_adapted_policy(tmp_path, capsys):
    pytest.importorskip("mujoco")
    out = tmp_path / "c"
    assert main(["train", "rl-halfcheetah-dir", "--out", str(out), "--steps", "1", *TINY]) == 0
    assert main(["report", str(out), "--quiet"]) == 0
    gif, png = out / "report/clip.gif", out / "report/clip.png"
    if gif.is_file():      # offscreen rendering works here (EGL or OSMesa)
        from PIL import Image
        with Image.open(gif) as clip:
            assert clip.n_frames > 10 and clip.size == (240, 180)
    else:                  # it does not: the picture says what to install, and so does stderr
        assert png.is_file() and "MUJOCO_GL" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "rl-nav2d", "--set", "model.name=mlp"],
     "the mlp model is for regression or classification tasks, but the nav2d family gives reinforcement tasks; "
     "use --set model.name=categorical_policy or gaussian_policy or policy"),
    (["train", "rl-nav2d", "--set", "model.name=categorical_policy"],
     "the categorical_policy model is for discrete actions but this environment's actions are continuous; "
     "use --set model.name=gaussian_policy"),
    (["train", "sinusoid", "--algo", "maml_trpo"],
     "maml_trpo works on reinforcement tasks, but the sinusoid family gives regression tasks"),
    (["train", "rl-nav2d", "--algo", "protonet"], "protonet works on classification tasks, but the nav2d family"),
    (["train", "rl-nav2d", "--set", "algo.estimator=dice"], "unknown algo.estimator 'dice'; choose one of: lvc, naive"),
    (["train", "rl-nav2d", "--set", "algo.max_kl=0"], "algo.max_kl must be positive"),
    (["train", "rl-nav2d", "--set", "task.gamma=1.5"], "task.gamma must be in (0, 1]"),
    (["train", "rl-halfcheetah-dir", "--set", "task.vector=threads"],
     "unknown task.vector 'threads'; choose one of: sync, async"),
    (["train", "rl-hopper-params", "--set", "task.vector=async", "--set", "task.workers=-1"],
     "task.workers must be 0 (one per core) or a positive count, got -1"),
])
def test_bad_rl_input_gets_one_line(capsys, tmp_path, argv, message):
    if "halfcheetah" in argv[1] or "hopper" in argv[1]:
        pytest.importorskip("mujoco")
    cli_error(capsys, [*argv, "--out", str(tmp_path / "r"), "--quiet"], message)


@pytest.mark.parametrize("preset, module, extra", [("rl-halfcheetah-dir", "gymnasium", "rl"),
                                                   ("rl-minigrid", "minigrid", "minigrid")])
def test_a_missing_optional_dependency_names_the_extra(capsys, tmp_path, monkeypatch, preset, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    cli_error(capsys, ["train", preset, "--out", str(tmp_path / "r"), "--quiet"], f"pip install 'metalearn-torch[{extra}]'")


def test_minigrid_tasks_are_seeded_layouts_disjoint_between_splits():
    pytest.importorskip("minigrid")
    from metalearn.tasks.rl.minigrid import MiniGridTasks
    train, test = MiniGridTasks(episodes=2, horizon=5), MiniGridTasks(episodes=2, horizon=5, split="test")
    g = torch.Generator().manual_seed(0)
    assert (train.sample_tasks(50, g) % 3 == 0).all() and (test.sample_tasks(50, g) % 3 == 2).all()
    env = train.make_env(torch.tensor([[3.0], [6.0]]), 2)
    obs = env.reset([0, 1])
    assert obs.shape == (2, 2, 147)
    assert torch.equal(obs[0, 0], obs[0, 1])        # the episodes of a task share its layout


def test_a_run_resumed_in_worker_processes_continues_with_the_same_numbers(tmp_path, capsys):
    pytest.importorskip("mujoco")

    def rows(run):
        return [{k: v for k, v in json.loads(line).items() if "second" not in k and "per_s" not in k}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    tiny = [*TINY, "--set", "train.threads=1"]
    assert main(["train", "rl-hopper-params", "--out", str(tmp_path / "straight"), "--steps", "4", *tiny]) == 0
    assert main(["train", "rl-hopper-params", "--out", str(tmp_path / "split"), "--steps", "2", *tiny]) == 0
    # how the episodes are stepped may change on resume; what they are may not
    cli_error(capsys, ["train", "--resume", str(tmp_path / "split"), "--set", "task.horizon=5"],
              "only --steps (or --set train.steps=N / train.time_limit=M / train.threads=T / task.vector=V")
    assert main(["train", "--resume", str(tmp_path / "split"), "--steps", "4", "--quiet",
                 "--set", "task.vector=async", "--set", "task.workers=2"]) == 0
    assert rows(tmp_path / "split") == rows(tmp_path / "straight")


def test_the_safeguard_is_refused_for_task_losses(capsys, tmp_path):
    from cli_helpers import cli_error
    cli_error(capsys, ["train", "rl-nav2d", "--algo", "maml", "--out", str(tmp_path / "r"), "--steps", "1",
                       "--set", "algo.safeguard=true"],
              "algo.safeguard keeps only inner steps that lower a supervised support loss", "algo.safeguard=false")


def test_plain_maml_trains_a_policy_on_an_environment_family(tmp_path):
    """MAML accepts task losses: on nav2d it adapts through the per-task contract (its family has no
    supervised loss name, which used to be a traceback)."""
    from metalearn.cli.main import main
    assert main(["train", "rl-nav2d", "--algo", "maml", "--out", str(tmp_path / "m"), "--steps", "1", "--quiet",
                 "--set", "task.shots=2", "--set", "task.queries=2", "--set", "task.horizon=5",
                 "--set", "train.val_tasks=2"]) == 0
    assert (tmp_path / "m" / "checkpoints" / "last.pt").is_file()
