"""Building goes through the registries: an algorithm is one module plus one registry line, its
settings are config keys, and building leaves nothing global behind."""
import pytest
import torch
import yaml

import metalearn as ml
from metalearn.algorithms import algorithm_options, get_spec
from metalearn.training.build import build_algorithm, build_tasks, build_trainer
from metalearn.cli.main import main
from metalearn.config import apply_overrides, load_preset, validate
from metalearn.errors import ConfigError


def test_the_one_file_algorithm_is_listed_and_trains_from_the_cli(tmp_path, capsys):
    assert main(["list"]) == 0
    assert "mamlmom" in capsys.readouterr().out
    out = tmp_path / "mom"
    assert main(["train", "sinusoid", "--algo", "mamlmom", "--out", str(out), "--steps", "30", "--quiet",
                 "--set", "algo.inner_momentum=0.5", "--set", "train.val_tasks=20", "--set", "model.hidden=[16]",
                 "--set", "train.val_every=10", "--set", "train.log_every=10"]) == 0
    algo = yaml.safe_load((out / "config.yaml").read_text())["algo"]
    assert algo["name"] == "mamlmom" and algo["inner_momentum"] == 0.5 and "msl_steps" not in algo
    assert main(["evaluate", str(out), "--quiet", "--tasks", "20", "--no-baseline", "--steps", "1,3"]) == 0
    assert "| mamlmom |" in capsys.readouterr().out


def test_options_are_typed_and_checked_by_the_algorithm_that_declares_them():
    options = algorithm_options()
    assert options["inner_momentum"].default == 0.9 and options["msl_steps"].type is int
    cfg = apply_overrides(load_preset("sinusoid"), ["algo.msl_steps=10"])
    assert cfg.algo.msl_steps == 10 and cfg.algo.options == {"msl_steps": 10}
    assert cfg.algo.inner_optimizer == "adam"  # not set: the declaring algorithm's default
    with pytest.raises(ConfigError, match="algo.msl_steps: expected an integer"):
        apply_overrides(load_preset("sinusoid"), ["algo.msl_steps=ten"])
    with pytest.raises(ConfigError, match="unknown algo.inner_optimizer 'lbfgs'; choose one of: sgd, adam"):
        apply_overrides(load_preset("sinusoid"), ["algo.inner_optimizer=lbfgs"])


def test_an_old_config_with_every_key_still_loads():
    """Configs written before the options were per algorithm list every key flat under algo."""
    data = load_preset("omniglot-5w1s").to_dict()
    data["algo"].update(head=None, msl_steps=5000, first_order_steps=0, multi_step_loss=True, learn_lrs=True,
                        per_step_bn=True, inner_optimizer="adam", classifier="cosine", objective="loss")
    cfg = ml.Config()
    from metalearn.config import config_from_dict
    cfg = config_from_dict(data)
    assert cfg.algo.name == "maml" and cfg.algo.classifier == "cosine"


def test_building_leaves_the_global_random_state_alone(tmp_path):
    cfg = validate(apply_overrides(load_preset("sinusoid"), ["model.hidden=[8]", "train.val_tasks=4"]))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    build_trainer(cfg, tmp_path / "r", progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    # and the model is the seed's, whatever the global state was
    a = build_algorithm(cfg, build_tasks(cfg)).state_dict()
    torch.manual_seed(999)
    b = build_algorithm(cfg, build_tasks(cfg)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_registered_algorithm_builds_from_its_default_settings_under_its_own_name():
    """Checkpoints record ``algorithm.name``; it must be the registry name the config uses."""
    from metalearn.data.images import ImageDataset
    from metalearn.models.lstm_optimizer import LSTMOptimizerNet
    from metalearn.tasks import FewShotTasks
    from metalearn.tasks.optimizees.problems import QuadraticProblems
    images = ImageDataset.from_class_lists([torch.zeros(4, 1, 16, 16, dtype=torch.uint8)] * 3, ["a", "b", "c"])
    families = {"regression": (ml.SinusoidTasks(), lambda: ml.mlp(1, [4], 1)),
                "classification": (FewShotTasks(images, 2, 1, 1), lambda: ml.models.conv4(1, 2, 4, 16)),
                "optimizer": (QuadraticProblems(2, 4), lambda: LSTMOptimizerNet(4)),
                "reinforcement": (ml.Nav2dTasks(), lambda: ml.models.GaussianPolicy(2, 2, [4]))}
    for name in ml.list_algorithms():
        spec = get_spec(name)
        family, model = families[spec.cls.task_kinds[0]]
        algo = spec.cls.from_settings(model(), family, spec.settings())
        assert isinstance(algo, ml.Algorithm) and algo.name == name, name


def test_the_one_registry_type_lists_sorted_keeps_order_and_names_the_valid_choices():
    from metalearn._util.registry import Registry
    from metalearn.errors import ConfigError
    reg: Registry[int] = Registry("widget")
    reg.add("b", 2)
    reg.add("a", 1)
    assert reg.names() == ["a", "b"] and reg.values() == [2, 1] and reg.get("a") == 1 and "b" in reg
    with pytest.raises(ConfigError, match=r"unknown widget 'c'; choose one of: a, b"):
        reg.get("c")
    with pytest.raises(ConfigError, match="unknown widget"):
        reg.get(["a"])  # type: ignore[arg-type]  # an unhashable name from a YAML list
