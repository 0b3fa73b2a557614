"""Weights & Biases (offline) and MLflow as optional loggers: config and metrics from training, the report's
pictures from ``metalearn report``, one W&B run id per run folder."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("wandb")


def _cli(*args, cwd):
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    return subprocess.run([sys.executable, "-m", "metalearn", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_wandb_logs_config_metrics_and_pictures_offline(tmp_path):
    out = _cli("train", "sinusoid", "--steps", "40", "--out", "run", "--quiet", "--set", "log.wandb=true",
               "--set", "train.log_every=10", "--set", "train.val_every=20", "--set", "train.val_tasks=20",
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "run"
    run_id = (run / "wandb_id").read_text().strip()
    files = list((run / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(files) == 1
    data = files[0].read_bytes()
    for key in (b"train_loss", b"val_loss", b"inner_lr", b"best_val"):   # metrics, resolved config, summary
        assert key in data, key
    out = _cli("report", "run", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    images = {p.name.split("_")[0] for p in (run / "wandb").glob(f"offline-run-*-{run_id}/files/media/images/*.png")}
    assert {"training", "steps", "tasks"} <= images        # the same W&B run, by its stored id
    # nothing imports wandb unless asked
    code = "import sys, metalearn.training.build, metalearn.report.figures; print('wandb' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_mlflow_logs_params_metrics_and_report_artifacts(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    out = _cli("train", "sinusoid", "--steps", "40", "--out", "runs/s", "--quiet", "--set", "log.mlflow=true",
               "--set", "train.log_every=10", "--set", "train.val_every=20", "--set", "train.val_tasks=20",
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert _cli("report", "runs/s", "--quiet", cwd=tmp_path).returncode == 0
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    run_id = (tmp_path / "runs" / "s" / "mlflow_id").read_text().strip()
    run = client.get_run(run_id)
    assert run.data.params["algo.inner_lr"] == "0.01" and run.data.params["task.family"] == "sinusoid"
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [20, 40]
    assert "best_val" in run.data.metrics
    assert {"report/training.png", "report/summary.md"} <= {a.path for a in client.list_artifacts(run_id, "report")}
