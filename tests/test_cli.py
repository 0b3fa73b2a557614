"""The CLI end to end, and its error cases: one clear line and exit code 2."""
import json
import subprocess
import sys
import time

import pytest
import torch
import yaml
from cli_helpers import cli_error as error_line

from metalearn.algorithms import list_algorithms
from metalearn.tasks import list_task_families
from metalearn.cli.main import main
from metalearn.runs import load_checkpoint

ALGORITHMS = list_algorithms()

SMALL = ["--quiet", "--set", "train.log_every=10", "--set", "train.val_every=20",
         "--set", "train.val_tasks=30", "--set", "train.ckpt_every=20", "--set", "eval.tasks=50",
         "--set", "model.hidden=[20, 20]", "--set", "train.meta_batch=8"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "sinusoid", "--out", str(out), "--steps", "40", *SMALL]) == 0
    return out


def test_train_evaluate_report_end_to_end(trained_run, capsys):
    assert (trained_run / "config.yaml").is_file()
    assert load_checkpoint(trained_run / "checkpoints/last.pt")["step"] == 40
    assert (trained_run / "checkpoints/best.pt").is_file()
    assert any((trained_run / "tb").iterdir())
    assert main(["evaluate", str(trained_run), "--quiet", "--steps", "1,10"]) == 0
    out = capsys.readouterr().out
    assert "| maml |" in out and "| pretrained baseline |" in out and "10 steps" in out
    result = json.loads((trained_run / "eval/eval_k10.json").read_text())
    assert result["tasks"] == 50 and result["steps"] == [0, 1, 10]
    assert result["methods"]["maml"]["steps"] == list(range(11))
    maml = result["methods"]["maml"]["mean"]
    assert maml[10] < maml[0], "ten inner steps must beat no adaptation"
    # MAML and the baseline are scored on the same tasks: their paired difference, step by step
    diff = result["paired"]["maml - pretrained baseline"]
    base = result["methods"]["pretrained baseline"]["mean"]
    assert diff["mean"][10] == pytest.approx(maml[10] - base[10], rel=1e-9, abs=1e-12)
    assert diff["wins"][10] + diff["losses"][10] + diff["ties"][10] == 50
    assert "Paired difference on the same 50 tasks, maml - pretrained baseline" in out
    assert load_checkpoint(trained_run / "baseline/checkpoints/last.pt")["step"] == 40  # same tasks seen
    assert main(["evaluate", str(trained_run), "--quiet", "--shots", "5", "--tasks", "20", "--no-baseline"]) == 0
    assert json.loads((trained_run / "eval/eval_k5.json").read_text())["shots"] == 5
    assert main(["report", str(trained_run), "--quiet"]) == 0
    for name in ("training.png", "tasks.png", "steps.png"):
        data = (trained_run / "report" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    assert "| maml |" in (trained_run / "report/summary.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["train", "nosuch"], "unknown preset or task family 'nosuch'; choose one of: fed-omniglot-5w1s, fed-remifentanil, glucose-30min, l2l-mnist, l2l-quadratic"),
    (["train", "sinusoid", "--algo", "mamml"], "unknown algorithm 'mamml'; choose one of: " + ", ".join(ALGORITHMS)),
    (["train", "sinusoid", "--set", "train.foo=1"], "unknown config key 'train.foo'"),
    (["train", "sinusoid", "--set", "train.steps=abc"], "train.steps: expected an integer, got 'abc'"),
    (["train", "sinusoid", "--set", "task.shots=0"], "task.shots must be positive"),
    (["train", "sinusoid", "--set", "task.family=cosine"], "unknown task family 'cosine'; choose one of: " + ", ".join(list_task_families())),
    (["train"], "name a preset"),
    (["evaluate", "/nonexistent/run"], "run folder /nonexistent/run does not exist"),
    (["report", "/nonexistent/run"], "does not exist"),
    (["train", "--resume", "/nonexistent/run"], "does not exist"),
    (["train", "sinusoid", "--set", "train.device=gpu"], "train.device='gpu' is not a device; use cpu, cuda or cuda:N"),
    (["train", "sinusoid", "--procs", "0"], "--procs must be a positive integer, got 0"),
    (["train", "sinusoid", "--set", "train.cuda_graph=true"], "train.cuda_graph needs train.device=cuda"),
    (["train", "omniglot-5w1s-mamlpp", "--set", "train.cuda_graph=true"], "train.cuda_graph supports anil, maml, mamlmom, metasgd, not mamlpp"),
    (["train", "sinusoid", "--algo", "scratch"], "scratch has nothing to meta-train"),
    (["train", "sinusoid", "--algo", "protonet"], "protonet works on classification tasks, but the sinusoid family gives regression tasks"),
    (["train", "sinusoid", "--algo", "l2l"], "l2l works on optimizer tasks"),
    (["train", "l2l-quadratic", "--algo", "maml"], "maml works on regression and classification and reinforcement tasks, but the quadratic family gives optimizer tasks"),
    (["train", "sinusoid", "--set", "model.name=lstm_optimizer"], "the lstm_optimizer model is for optimizer tasks, but the sinusoid family gives regression tasks; use --set model.name=conv4 or mlp"),
    (["train", "sinusoid", "--set", "algo.classifier=round"], "unknown algo.classifier 'round'; choose one of: cosine, linear"),
    (["train", "sinusoid", "--algo", "mamlmom", "--set", "algo.inner_momentum=1.5"], "algo.inner_momentum must be in [0, 1), got 1.5"),
    (["train", "sinusoid", "--set", "algo.nosuch=1"], "unknown config key 'algo.nosuch'; valid keys here: algo.name, algo.inner_lr"),
    (["evaluate", "/nonexistent/run", "--device", "tpu9"], "--device='tpu9' is not a device"),
])
def test_bad_input_gets_one_line_and_exit_code_2(capsys, tmp_path, argv, message):
    argv = [a.replace("/nonexistent", str(tmp_path / "missing")) for a in argv]
    message = message.replace("/nonexistent", str(tmp_path / "missing"))
    if argv[0] == "train" and "--resume" not in argv:
        argv += ["--out", str(tmp_path / "r"), "--quiet"]
    assert message in error_line(capsys, argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_named(capsys, tmp_path):
    line = error_line(capsys, ["train", "sinusoid", "--out", str(tmp_path / "r"), "--set", "train.device=cuda"])
    assert "train.device=cuda but PyTorch sees no CUDA GPU on this machine; use cpu" in line


def test_evaluate_bad_shots_and_not_a_run(capsys, trained_run, tmp_path):
    assert "--shots must be a positive integer" in error_line(capsys, ["evaluate", str(trained_run), "--shots", "0"])
    (tmp_path / "empty").mkdir()
    assert "is not a metalearn run: config.yaml is missing" in error_line(capsys, ["evaluate", str(tmp_path / "empty")])


def test_existing_run_is_not_overwritten(capsys, trained_run):
    assert "already holds a run; continue it with 'metalearn train --resume" in \
        error_line(capsys, ["train", "sinusoid", "--out", str(trained_run), "--quiet"])


def copy_run(src, dst):
    import shutil
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("baseline", "eval", "report"))
    return dst


def test_corrupt_checkpoint_is_named(capsys, trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "corrupt")
    data = (run / "checkpoints/best.pt").read_bytes()
    (run / "checkpoints/best.pt").write_bytes(data[: len(data) // 2])
    err = error_line(capsys, ["evaluate", str(run), "--no-baseline"])
    assert f"checkpoint {run / 'checkpoints/best.pt'} is corrupt" in err


def test_checkpoint_from_a_different_model(capsys, trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "other")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"]["hidden"] = [32, 32]
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    err = error_line(capsys, ["evaluate", str(run), "--no-baseline"])
    assert "was saved from a different model" in err and "model.0.weight: checkpoint (20, 1) vs model (32, 1)" in err


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL a real CLI process mid-run; resuming ends bit-identical to an uninterrupted run."""
    args = ["--steps", "600", "--quiet", "--set", "train.ckpt_every=50", "--set", "train.val_every=100",
            "--set", "train.log_every=50", "--set", "train.val_tasks=20", "--set", "model.hidden=[20, 20]"]
    cmd = [sys.executable, "-m", "metalearn", "train", "sinusoid"]
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "killed"), *args])
    ckpt = tmp_path / "killed/checkpoints/last.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if ckpt.is_file() and load_checkpoint(ckpt)["step"] >= 150:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    stopped_at = load_checkpoint(ckpt)["step"]
    assert 150 <= stopped_at < 600, "the run should have been killed mid-way"
    subprocess.run(cmd[:4] + ["--resume", str(tmp_path / "killed"), "--quiet"], check=True)
    subprocess.run(cmd + ["--out", str(tmp_path / "straight"), *args], check=True)
    a = load_checkpoint(ckpt)["model"]
    b = load_checkpoint(tmp_path / "straight/checkpoints/last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed/metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 600


def test_version_and_info_say_what_a_run_is(trained_run, capsys):
    import metalearn
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"metalearn {metalearn.__version__}"
    assert main(["info", str(trained_run)]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    best = min(r["val_loss"] for r in rows if "val_loss" in r)
    assert "family:      sinusoid" in out and "algorithm:   maml" in out and "meta-steps:  40 of 40" in out
    assert f"best val:    loss {best:.4g}" in out
    n = sum(p.numel() for p in load_checkpoint(trained_run / "checkpoints/last.pt")["model"].values())
    assert f"parameters:  {n:,} learned" in out
    error_line(capsys, ["info", str(trained_run / "nope")], "does not exist")


def test_train_prints_the_best_validation_in_the_units_evaluate_uses(tmp_path, capsys):
    pytest.importorskip("pandas")
    out = tmp_path / "g"
    assert main(["train", "glucose-30min", "--steps", "2", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    raw = min(json.loads(line)["val_rmse"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if "val_rmse" in line)
    std = json.loads((out / "fitted.json").read_text())["encoder"]["target_stats"][1]
    assert f"best validation RMSE (mg/dL) {raw * std:.4g} at step" in printed   # not the standardised {raw}
    assert main(["info", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"RMSE (mg/dL) {raw * std:.4g}" in shown and "sha256 " in shown and "split:       test " in shown


def test_federate_names_every_strategy_and_evaluates_a_run_with_its_own_config(capsys, tmp_path):
    from metalearn.federated.fedmeta import STRATEGIES
    with pytest.raises(SystemExit):
        main(["federate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(s in text for s in STRATEGIES)
    error_line(capsys, ["federate", "fed-remifentanil", "--evaluate", str(tmp_path)], "drop fed-remifentanil")
    error_line(capsys, ["federate", "--evaluate", str(tmp_path / "none")], "does not exist")
    error_line(capsys, ["federate", "--out", str(tmp_path / "x")], "name a federated preset")
