"""Run folders cannot be corrupted: one writer at a time, a resume only from the run's own
checkpoint, no user file overwritten, nothing rewritten by a command that fails; and every bad
input gets one line and exit code 2, with the run folder's files byte-identical afterwards."""
import errno
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import cli_error as fails

import metalearn.runs.folder
import metalearn.training.trainer
from metalearn.cli.main import main
from metalearn.runs import RunLock, load_checkpoint

TINY = ["--quiet", "--set", "train.log_every=5", "--set", "train.val_every=10", "--set", "train.val_tasks=10",
        "--set", "train.ckpt_every=10", "--set", "eval.tasks=20", "--set", "model.hidden=[8, 8]",
        "--set", "train.meta_batch=4"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (the lock file excepted) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != RunLock.NAME}


def train(out: Path, preset: str = "sinusoid", steps: int = 20, *extra: str) -> None:
    assert main(["train", preset, "--out", str(out), "--steps", str(steps), *TINY, *extra]) == 0


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 20-step sinusoid run, copied by each test that changes it."""
    out = tmp_path_factory.mktemp("runs") / "done"
    train(out)
    return out


@pytest.fixture
def run(finished, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


# -- one writer per run folder ------------------------------------------------------------------

def _start_holder(out: Path) -> subprocess.Popen:
    """A training in another process that checkpoints every 5 steps and runs for minutes."""
    cmd = [sys.executable, "-m", "metalearn", "train", "sinusoid", "--out", str(out), "--steps", "1000000",
           *TINY, "--set", "train.ckpt_every=5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (out / "checkpoints" / "last.pt").is_file():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "the training did not write a checkpoint in 60 s"
        time.sleep(0.1)
    return proc


def test_a_second_writer_is_refused_and_a_killed_writers_lock_does_not_block(tmp_path, capsys):
    out = tmp_path / "busy"
    proc = _start_holder(out)
    try:
        host = __import__("socket").gethostname()
        fails(capsys, ["train", "sinusoid", "--out", str(out), *TINY], f"in use by process {proc.pid} on {host}")
        fails(capsys, ["train", "--resume", str(out), "--steps", "10"], f"in use by process {proc.pid}")
        with pytest.raises(metalearn.errors.RunError, match=f"process {proc.pid}"):
            RunLock(out).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (out / RunLock.NAME).is_file(), "a killed process leaves its lock file behind"
    step = load_checkpoint(out / "checkpoints" / "last.pt")["step"]
    assert main(["train", "--resume", str(out), "--set", "train.time_limit=0.002"]) == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] > step
    assert not (out / RunLock.NAME).exists(), "the lock is released when training ends"


def test_the_lock_is_exclusive_between_processes(tmp_path):
    lock = RunLock(tmp_path).acquire()
    code = ("import sys; from metalearn.runs import RunLock; from metalearn.errors import RunError\n"
            "try:\n    RunLock(sys.argv[1]).acquire()\nexcept RunError as e:\n    print(e); sys.exit(3)\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 3 and f"process {os.getpid()}" in res.stdout, res
    lock.release()
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, res


# -- resume only from the run's own checkpoint, never rewriting what it refuses ------------------

def test_resume_refuses_a_checkpoint_of_another_config(run, tmp_path, capsys):
    other = tmp_path / "fo"
    train(other, "sinusoid-fomaml")
    shutil.copy(other / "checkpoints/last.pt", run / "checkpoints/last.pt")
    before = snapshot(run)
    fails(capsys, ["train", "--resume", str(run), "--steps", "40"],
          "another config", "algo.mode: 'first_order' vs 'second_order'")
    assert snapshot(run) == before


def test_resume_refuses_a_checkpoint_of_another_algorithm(run, tmp_path, capsys):
    state = load_checkpoint(run / "checkpoints/last.pt")
    state["algorithm"] = "pretrain"
    metalearn.runs.save_checkpoint(run / "checkpoints/last.pt", {k: v for k, v in state.items() if k != "format"})
    before = snapshot(run)
    fails(capsys, ["train", "--resume", str(run), "--steps", "40"], "algorithm 'pretrain'", "trains 'maml'")
    assert snapshot(run) == before


def test_a_shorter_resume_is_refused_and_leaves_the_config(run, capsys):
    before = snapshot(run)
    fails(capsys, ["train", "--resume", str(run), "--steps", "10"], "already at step 20", "at least 20")
    assert snapshot(run) == before


def test_a_resume_from_a_corrupt_checkpoint_leaves_the_config(run, capsys):
    (run / "checkpoints/last.pt").write_bytes(b"\x00garbage" * 10)
    before = snapshot(run)
    fails(capsys, ["train", "--resume", str(run), "--steps", "400"], "is corrupt", "not loaded")
    assert snapshot(run) == before
    assert "steps: 20" in (run / "config.yaml").read_text()


def test_a_longer_resume_records_its_steps(run):
    assert main(["train", "--resume", str(run), "--steps", "30", "--quiet"]) == 0
    assert "steps: 30" in (run / "config.yaml").read_text()
    assert load_checkpoint(run / "checkpoints/last.pt")["step"] == 30


class _Evil:
    pass


@pytest.mark.parametrize("command", ["resume", "evaluate"])
def test_a_checkpoint_with_pickled_code_is_refused_without_pytorchs_hint(run, capsys, command):
    buf = io.BytesIO()
    torch.save({"format": 1, "model": {}, "payload": _Evil()}, buf)
    (run / "checkpoints/last.pt").write_bytes(buf.getvalue())
    (run / "checkpoints/best.pt").write_bytes(buf.getvalue())
    before = snapshot(run)
    argv = (["train", "--resume", str(run), "--steps", "40"] if command == "resume"
            else ["evaluate", str(run), "--quiet", "--no-baseline"])
    err = fails(capsys, argv, "unsafe to load", "was not loaded")
    assert "weights_only" not in err
    assert snapshot(run) == before


# -- the user's own files --------------------------------------------------------------------------

def test_out_never_writes_into_a_folder_of_other_files(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my own settings\n")
    fails(capsys, ["train", "sinusoid", "--out", str(mine), *TINY], "not empty and is not a metalearn run")
    assert [p.name for p in mine.iterdir()] == ["config.yaml"]
    assert (mine / "config.yaml").read_text() == "my own settings\n"


def test_out_refuses_an_empty_path_and_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fails(capsys, ["train", "sinusoid", "--out", "", *TINY], "--out is empty")
    fails(capsys, ["train", "sinusoid", "--out", "  ", *TINY], "--out is empty")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "afile").write_text("x")
    fails(capsys, ["train", "sinusoid", "--out", str(tmp_path / "afile"), *TINY], "is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "x"


def test_out_accepts_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    train(tmp_path / "empty", steps=5)


def test_an_existing_run_is_not_overwritten(run, capsys):
    before = snapshot(run)
    fails(capsys, ["train", "sinusoid", "--out", str(run), *TINY], "already holds a run", "--resume")
    assert snapshot(run) == before


def test_the_api_does_not_restart_a_finished_run(run):
    import metalearn as ml
    algo = ml.MAML(ml.mlp(1, [8], 1))
    with pytest.raises(ml.RunError, match="already holds a run"):
        ml.meta_train(algo, ml.SinusoidTasks(), run, steps=5, progress=False)


# -- a run that stopped on a non-finite loss before its first checkpoint -------------------------

def test_a_run_that_diverged_at_its_first_step_says_to_delete_it(tmp_path, capsys):
    out = tmp_path / "nan"
    fails(capsys, ["train", "sinusoid", "--out", str(out), "--steps", "20", *TINY, "--set", "algo.inner_lr=1e30"],
          "before the first checkpoint", f"rm -r {out}")
    fails(capsys, ["train", "sinusoid", "--out", str(out), *TINY], "stopped before its first checkpoint",
          f"rm -r {out}")
    fails(capsys, ["train", "--resume", str(out)], "no checkpoint to resume from", f"rm -r {out}")
    shutil.rmtree(out)
    train(out, steps=5)  # the advice works


def test_resume_without_last_checkpoint_keeps_the_best_one(tmp_path, capsys):
    out = tmp_path / "run"
    train(out, steps=10)
    (out / "checkpoints" / "last.pt").unlink()
    fails(capsys, ["train", "--resume", str(out)], "has no last.pt to resume from", "start a new run")
    assert (out / "checkpoints" / "best.pt").is_file()
    assert main(["evaluate", str(out), "--quiet", "--tasks", "5", "--no-baseline"]) == 0


# -- files that are not what they should be ---------------------------------------------------------

def test_binary_garbage_in_the_config(run, capsys):
    (run / "config.yaml").write_bytes(bytes(range(256)) * 4)
    before = snapshot(run)
    fails(capsys, ["evaluate", str(run), "--quiet"], "config.yaml is not a text file")
    fails(capsys, ["train", "--resume", str(run), "--steps", "40"], "config.yaml is not a text file")
    assert snapshot(run) == before


def test_resume_skips_metric_rows_that_are_not_objects_with_a_numeric_step(run, capsys):
    with open(run / "metrics.jsonl", "a") as f:
        f.write("[1, 2, 3]\n{\"step\": \"ten\", \"train_loss\": 1.0}\n\"text\"\n")
    assert main(["train", "--resume", str(run), "--steps", "25", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: skipped 3 line(s)" in err and "metrics.jsonl" in err
    rows = metalearn.runs.Run(run).read_metrics()
    assert rows and all(isinstance(r["step"], int) for r in rows) and rows[-1]["step"] == 25


# -- the operating system says no ------------------------------------------------------------------

def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_keeps_the_last_good_checkpoint_and_says_so(run, capsys, monkeypatch):
    good = (run / "checkpoints/last.pt").read_bytes()
    monkeypatch.setattr(metalearn.training.trainer, "save_checkpoint", _no_space)
    err = fails(capsys, ["train", "--resume", str(run), "--steps", "40", "--quiet"], "No space left on device",
                "still holds the last good checkpoint (step 20)", "--resume")
    assert str(run / "checkpoints") in err
    assert (run / "checkpoints/last.pt").read_bytes() == good


def test_a_read_only_file_system_is_one_line(tmp_path, capsys, monkeypatch):
    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
    monkeypatch.setattr(metalearn.runs.folder.tempfile, "mkstemp", read_only)
    fails(capsys, ["train", "sinusoid", "--out", str(tmp_path / "ro"), *TINY], "Read-only file system",
          str(tmp_path / "ro"))


def test_evaluate_checks_that_it_can_write_before_computing(run, capsys, monkeypatch):
    (run / "eval").write_text("not a folder")
    called = []
    monkeypatch.setattr("metalearn.evaluation.adaptation.build_tasks", lambda *a, **k: called.append(1))
    fails(capsys, ["evaluate", str(run), "--quiet"], f"cannot write to {run / 'eval'}")
    assert not called and not (run / "baseline").exists()


def test_the_progress_bar_shows_the_last_logged_loss_at_validation_rows(tmp_path, monkeypatch):
    shown = []

    class Bar:
        def __init__(self, *a, **k):
            pass

        def update(self, n):
            pass

        def set_postfix(self, **kw):
            shown.append(kw["loss"])

        def close(self):
            pass

    monkeypatch.setattr(metalearn.training.trainer, "tqdm", Bar)
    train(tmp_path / "bar", "sinusoid", 20, "--set", "train.val_every=3")
    assert len(shown) > 4 and "nan" not in shown[2:], shown  # rows at 3, 5, 6, 9, 10, ...
