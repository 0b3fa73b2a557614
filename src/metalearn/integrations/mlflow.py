"""MLflow as an optional logger beside JSON lines and TensorBoard (``--set log.mlflow=true``).

A trainer callback, like :mod:`metalearn.integrations.wandb`: the run's resolved config as parameters (dotted
keys), the training loss every ``train.log_every`` steps and every validation row at its step, the
best validation value at the end; ``metalearn report`` adds the report's pictures as artifacts. The
tracking store is ``log.mlflow_uri``, else ``$MLFLOW_TRACKING_URI``, else an SQLite database beside
the run folder (``runs/mlflow.db`` for ``runs/NAME``, shared by the runs there; artifacts in
``runs/mlartifacts``), so ``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db`` shows them.
The MLflow run id is kept in ``RUN/mlflow_id``: a resumed run continues the same MLflow run.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .._util.files import atomic_write_text
from ..config import flatten
from ..errors import ConfigError

EXPERIMENT = "metalearn"


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise ConfigError("log.mlflow=true needs MLflow: pip install 'metalearn-torch[mlflow]'") from None
    import logging
    for name in ("mlflow", "alembic"):   # its database set-up talks at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


def tracking_uri(run_dir: Path, uri: str | None) -> str:
    """The MLflow store: ``log.mlflow_uri``, else ``$MLFLOW_TRACKING_URI``, else ``mlflow.db`` beside the run folder."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{run_dir.resolve().parent / 'mlflow.db'}"


def _client(run_dir: Path, uri: str | None) -> tuple[Any, str]:
    """An MLflow client of the store and the id of ``run_dir``'s MLflow run (created on first use)."""
    mlflow = _mlflow()
    store = tracking_uri(run_dir, uri)
    client = mlflow.tracking.MlflowClient(store)
    id_file = run_dir / "mlflow_id"
    if id_file.is_file():
        return client, id_file.read_text().strip()
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        artifacts = None
        if store.startswith("sqlite:///"):
            artifacts = (Path(store[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
        exp_id = client.create_experiment(EXPERIMENT, artifact_location=artifacts)
    else:
        exp_id = exp.experiment_id
    run = client.create_run(exp_id, run_name=run_dir.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(id_file, run.info.run_id + "\n")
    return client, run.info.run_id


class MLflowLogger:
    """Trainer callback that logs to an MLflow run (see the module docstring)."""

    def __init__(self, run_dir: Path | str, config: dict[str, Any], uri: str | None = None,
                 log_every: int = 100) -> None:
        _mlflow()   # a missing extra fails before any training
        self.run_dir, self.config, self.uri, self.log_every = Path(run_dir), config, uri, log_every
        self.client: Any = None
        self.run_id = ""

    def _ensure(self) -> None:
        if self.client is None:
            self.client, self.run_id = _client(self.run_dir, self.uri)
            params = {k: str(v)[:500] for k, v in flatten(self.config).items()}
            logged = self.client.get_run(self.run_id).data.params
            new = {k: v for k, v in params.items() if k not in logged}
            if new:
                from mlflow.entities import Param
                self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in new.items()])

    def _log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric
        self._ensure()
        import time
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items() if math.isfinite(float(v))]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def on_step(self, trainer: Any, step: int, loss: Any) -> bool:
        if step % self.log_every == 0:
            self._log({"train_loss": float(loss)}, step)
        return False

    def on_validation(self, trainer: Any, step: int, row: dict[str, float]) -> bool:
        self._log({k: v for k, v in row.items() if k != "step"}, step)
        return False

    def on_end(self, trainer: Any, result: Any) -> None:
        if self.client is not None:
            self._log({"best_val": result.best_val, "best_step": result.best_step}, result.step)


def log_artifacts(run_dir: Path | str, uri: str | None, files: list[Path]) -> None:
    """Add the report's files to the run's MLflow run, under ``report/``."""
    client, run_id = _client(Path(run_dir), uri)
    for f in files:
        client.log_artifact(run_id, str(f), artifact_path="report")
