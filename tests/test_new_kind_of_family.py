"""Adding a new kind of family is one sub-package plus registry lines: this file plays the
sub-package ("linear systems": each task is a random linear map y = A x + noise), written only
against metalearn's protocols, with its own settings (task.dim, task.noise), its own evaluator
(the error of the map the adapted model implies) and its own adapter for ``metalearn adapt``
(JSON files of points). The three register_* calls at the bottom are the registry lines; nothing
in metalearn is edited, and train, evaluate and adapt run it from the CLI."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from metalearn.batch import TaskBatch
from metalearn.cli.main import main
from metalearn.config import Config
from metalearn.errors import ConfigError
from metalearn.evaluation.adapters import AdaptOptions, Prediction, register_adapter, unregister_adapter
from metalearn.evaluation.base import EvalRequest
from metalearn.evaluation.registry import register_evaluator, unregister_evaluator
from metalearn.protocols import Metric, Result, SupervisedFamily
from metalearn.runs import Run
from metalearn.tasks.registry import register_task_family, unregister_task_family
from metalearn.training.build import build_tasks
from metalearn.training.loading import load_algorithm

from cli_helpers import cli_error


# ---- the sub-package: settings, family, evaluator, adapter ---------------------------------------
@dataclass
class LinearSettings:
    """task.dim: input and output dimension; task.noise: the targets' noise standard deviation."""

    dim: int = 3
    noise: float = 0.0

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ConfigError(f"task.dim must be positive, got {self.dim}")


class LinearSystems:
    kind = "regression"
    loss = "mse"
    metric = Metric("mse", higher_is_better=False)
    evaluator = "map_error"
    adapt_input = "json_points"
    pictures = ("steps",)
    baseline = None
    settings = LinearSettings

    def __init__(self, dim: int, shots: int, queries: int, noise: float) -> None:
        self.dim, self.shots, self.queries, self.noise = dim, shots, queries, noise
        self.input_shape, self.output_dim = (dim,), dim

    @classmethod
    def from_config(cls, t, split, shots, queries, horizon=None, cross_domain=False) -> LinearSystems:
        return cls(t.dim, shots, queries, t.noise)

    def sample_with_maps(self, n: int, generator: torch.Generator | None = None) -> tuple[TaskBatch, torch.Tensor]:
        maps = torch.randn(n, self.dim, self.dim, generator=generator) / self.dim ** 0.5
        xs = torch.randn(n, self.shots + self.queries, self.dim, generator=generator)
        ys = xs @ maps.transpose(1, 2) + self.noise * torch.randn(xs.shape, generator=generator)
        k = self.shots
        return TaskBatch(xs[:, :k], ys[:, :k], xs[:, k:], ys[:, k:]), maps

    def sample(self, n: int, generator: torch.Generator | None = None) -> TaskBatch:
        return self.sample_with_maps(n, generator)[0]


@dataclass
class MapError:
    """The evaluator's result: the mean error of the adapted model's implied map."""

    tasks: int
    before: float
    after: float
    path: Path | None = None

    def table(self) -> str:
        return f"| map error | before | after |\n|---|---:|---:|\n| {self.tasks} tasks | {self.before:.3f} | {self.after:.3f} |"

    def to_dict(self) -> dict:
        return {"tasks": self.tasks, "before": self.before, "after": self.after}


class MapErrorEvaluator:
    name = "map_error"

    def evaluate(self, run: Run, cfg: Config, request: EvalRequest) -> MapError:
        family = build_tasks(cfg, "test")
        algo = load_algorithm(run, cfg, request.checkpoint)
        batch, maps = family.sample_with_maps(request.tasks or 8, torch.Generator().manual_seed(cfg.eval.seed))
        errors = []
        for steps in (0, max(request.steps or cfg.eval.steps)):
            err = 0.0
            for i in range(batch.num_tasks):
                learner = algo.adapt(batch.support_x[i], batch.support_y[i], steps=steps)
                with torch.no_grad():
                    implied = (learner(torch.eye(family.dim)) - learner(torch.zeros(1, family.dim))).T
                err += float((implied - maps[i]).norm() / maps[i].norm())
            errors.append(err / batch.num_tasks)
        result = MapError(batch.num_tasks, errors[0], errors[1], run.path / "eval" / "map_error.json")
        result.path.parent.mkdir(exist_ok=True)
        result.path.write_text(json.dumps(result.to_dict()))
        return result

    def load(self, run: Run, cfg: Config) -> MapError | None:
        path = run.path / "eval" / "map_error.json"
        return MapError(**json.loads(path.read_text()), path=path) if path.is_file() else None

    def curve_metric(self, cfg: Config) -> Metric:
        return LinearSystems.metric


class JsonPoints:
    name = "json_points"
    inputs = "JSON files of points ({\"x\": [[...]], \"y\": [[...]]})"

    def adapt(self, run: Run, support: Path, query: Path, options: AdaptOptions) -> Prediction:
        s, q = json.loads(support.read_text()), json.loads(query.read_text())
        algo = load_algorithm(run)
        learner = algo.adapt(torch.tensor(s["x"]), torch.tensor(s["y"]), steps=options.steps or 5)
        with torch.no_grad():
            pred = learner(torch.tensor(q["x"]))
        csv = "\n".join(",".join(f"{v:.4f}" for v in row) for row in pred.tolist()) + "\n"
        return Prediction(csv, len(pred), [f"adapted to {len(s['x'])} points; wrote {len(pred)} rows to " + "{out}"])


# ---- the registry lines ---------------------------------------------------------------------------
@pytest.fixture
def linear_kind():
    register_task_family("linear", LinearSystems)
    register_evaluator(MapErrorEvaluator())
    register_adapter(JsonPoints())
    yield
    unregister_task_family("linear")
    unregister_evaluator("map_error")
    unregister_adapter("json_points")


TINY = ["--steps", "40", "--quiet", "--set", "train.val_every=20", "--set", "train.val_tasks=8",
        "--set", "train.log_every=10", "--set", "train.meta_batch=4", "--set", "model.hidden=[16]",
        "--set", "algo.inner_lr=0.1"]


def test_a_new_kind_of_family_trains_evaluates_and_adapts_from_the_cli(linear_kind, tmp_path, capsys):
    assert isinstance(LinearSystems(3, 5, 5, 0.0), SupervisedFamily)
    run = tmp_path / "lin"
    assert main(["train", "sinusoid", "--out", str(run), "--set", "task.family=linear", "--set", "task.dim=2",
                 "--set", "task.shots=6", *TINY]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())["task"]
    assert saved["dim"] == 2 and saved["noise"] == 0.0 and "amplitude" not in saved
    # its own evaluator, through the registry
    assert main(["evaluate", str(run), "--tasks", "6", "--steps", "5", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| map error | before | after |" in printed
    result = MapErrorEvaluator().load(Run.open(run), Run.open(run).load_config())
    assert isinstance(result, Result) and result.after < result.before   # adaptation recovers the map
    # its own adapter, through the registry
    (tmp_path / "s.json").write_text(json.dumps({"x": [[1.0, 0.0], [0.0, 1.0]], "y": [[0.5, 0.1], [0.2, -0.3]]}))
    (tmp_path / "q.json").write_text(json.dumps({"x": [[1.0, 1.0]]}))
    out = tmp_path / "pred.csv"
    assert main(["adapt", str(run), "--support", str(tmp_path / "s.json"), "--query", str(tmp_path / "q.json"),
                 "--out", str(out)]) == 0
    assert len(out.read_text().strip().split(",")) == 2 and f"wrote 1 rows to {out}" in capsys.readouterr().out


def test_its_settings_are_checked_and_its_keys_named(linear_kind, tmp_path, capsys):
    cli_error(capsys, ["train", "sinusoid", "--out", str(tmp_path / "a"), "--set", "task.family=linear",
                       "--set", "task.dim=0"], "task.dim must be positive, got 0")
    cli_error(capsys, ["train", "sinusoid", "--out", str(tmp_path / "b"), "--set", "task.family=linear",
                       "--set", "task.ways=2"], "task.ways is not a key of the linear task family",
              "the linear family's keys: task.family, task.shots, task.queries, task.data_dir, task.dim, task.noise")
