"""Evaluators and adapters are registered objects: every family's declaration names one, every
result implements the Result protocol, and the CLI reaches them only through the registries."""
from pathlib import Path

import pytest
import torch

from metalearn.evaluation.adaptation import CurveStats, EvalResult
from metalearn.evaluation.adapters import Adapter, adapter_for, get_adapter, list_adapters
from metalearn.evaluation.base import Evaluator
from metalearn.evaluation.groups import GroupEvaluation
from metalearn.evaluation.optimizers import OptimizerComparison
from metalearn.evaluation.registry import evaluator_for, get_evaluator, list_evaluators
from metalearn.federated.fedmeta import FedEvaluation
from metalearn.config import Config
from metalearn.errors import ConfigError
from metalearn.protocols import Result


def test_registered_evaluators_and_adapters_implement_their_protocols():
    assert list_evaluators() == ["adaptation", "groups", "optimizers"]
    assert list_adapters() == ["image_folders", "table_rows"]
    for name in list_evaluators():
        assert isinstance(get_evaluator(name), Evaluator) and get_evaluator(name).name == name
    for name in list_adapters():
        assert isinstance(get_adapter(name), Adapter) and get_adapter(name).name == name


def test_every_kind_of_result_implements_the_result_protocol():
    curve = torch.tensor([[1.0, 0.5], [2.0, 1.0]])
    adaptation = EvalResult(1, 2, 0, "MSE", [0, 1], {"maml": CurveStats.from_curve(curve, loss=True)})
    groups = GroupEvaluation("t", "MAE", False, [1], ["a"], ["all"], 1, 0, {"m": {"1": [0.5]}, "ridge": {"1": [0.7]}},
                             baselines=["ridge"])
    optimizers = OptimizerComparison({"problems": 1, "seed": 0, "variants": {
        "as trained": {"steps": 1, "results": {"SGD": {"final_mean": 1.0, "final_ci": 0.1, "lr": 0.1}}}}})
    federated = FedEvaluation("fedmeta", ["a", "b"], [0, 1], [[50.0, 60.0], [40.0, 70.0]], 2, 1000)
    for result in (adaptation, groups, optimizers, federated):
        assert isinstance(result, Result), type(result).__name__
        assert result.table().strip() and isinstance(result.to_dict(), dict)


@pytest.mark.parametrize("family, evaluator, adapter", [("sinusoid", "adaptation", None),
                                                         ("omniglot", "adaptation", "image_folders"),
                                                         ("table", "groups", "table_rows"),
                                                         ("quadratic", "optimizers", None)])
def test_a_family_declaration_selects_its_evaluator_and_adapter(family, evaluator, adapter):
    cfg = Config()
    cfg.task.family = family
    assert evaluator_for(cfg).name == evaluator
    if adapter is None:
        with pytest.raises(ConfigError, match=f"a {family} run adapts through the Python API"):
            adapter_for(cfg)
    else:
        assert adapter_for(cfg).name == adapter


def test_an_unknown_evaluator_names_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown evaluator 'nope'; choose one of: adaptation, groups, optimizers"):
        get_evaluator("nope")
