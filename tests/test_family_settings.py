"""Each task family declares its own ``task.*`` keys (a settings dataclass on its registry entry):
keys of another family are refused naming the family and its keys, a family's checks run on its
keys, a run writes only its own family's keys, and the config of a run folder written before
(one task section with every family's keys) still loads through one migration."""
import dataclasses
import typing

import pytest
import yaml

import metalearn as ml
from metalearn.cli.main import main
from metalearn.config import Config, apply_overrides, config_from_dict, load_preset, migrate_config, validate
from metalearn.config.schema import CONFIG_VERSION
from metalearn.errors import ConfigError
from metalearn.runs import Run
from metalearn.tasks import get_task_family
from metalearn.tasks.registry import SHARED_TASK_KEYS, task_options

from cli_helpers import cli_error

# a sinusoid run's config.yaml as version 1 wrote it (every family's keys in one task section)
V1_TASK = {"family": "sinusoid", "shots": 10, "queries": None, "ways": 5, "image_size": 28, "protocol": "maml",
           "episodes": "random", "rotations": True, "augment": 0.0, "classes": [0, 1, 2, 3, 4], "channels": 1,
           "data_dir": None, "horizon": 100, "unroll": 20, "dim": 10, "mlp_hidden": [20],
           "mlp_activation": "sigmoid", "minibatch": 128, "amplitude": [0.5, 2.0], "phase": [0.0, 3.141592653589793],
           "x_range": [-5.0, 5.0], "data": None, "group": None, "target": None, "features": None, "time": None,
           "categorical": [], "stratify": None, "target_type": "auto", "residual_of": None,
           "split": [0.7, 0.15, 0.15], "split_seed": 0, "support_until": None, "gamma": 0.99, "gae_lambda": 1.0,
           "vector": "sync", "workers": 0}


def test_a_key_declared_by_several_families_means_one_type_and_default():
    seen: dict[str, tuple] = {}
    for name in ml.list_task_families():
        settings = get_task_family(name).settings
        if settings is None:
            continue
        hints = typing.get_type_hints(settings)
        for f in dataclasses.fields(settings):
            assert f.name not in SHARED_TASK_KEYS, f"{name} redeclares the shared key {f.name}"
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            entry = (hints[f.name], default)
            assert seen.setdefault(f.name, entry) == entry, f"task.{f.name} differs between families"


def test_every_family_declares_its_keys_and_the_shared_section_is_small():
    assert [f.name for f in dataclasses.fields(ml.Config().task)] == [*SHARED_TASK_KEYS, "options"]
    for name in ml.list_task_families():
        assert get_task_family(name).settings is not None, name
    assert get_task_family("omniglot").task_keys()[:4] == ["ways", "image_size", "episodes", "augment"]
    assert "horizon" in get_task_family("nav2d").task_keys() and "horizon" in get_task_family("quadratic").task_keys()
    assert "ways" not in get_task_family("sinusoid").task_keys()


def test_a_key_of_another_family_names_the_family_its_keys_and_the_owners(capsys, tmp_path):
    cli_error(capsys, ["train", "sinusoid", "--out", str(tmp_path / "r"), "--set", "task.ways=3"],
              "task.ways is not a key of the sinusoid task family (it belongs to omniglot, mnist, image_folder)",
              "the sinusoid family's keys: task.family, task.shots, task.queries, task.data_dir, task.amplitude, "
              "task.phase, task.x_range")
    assert not (tmp_path / "r").exists()


def test_an_unknown_task_key_lists_the_familys_keys():
    cfg = load_preset("rl-nav2d")
    with pytest.raises(ConfigError, match="unknown config key 'task.horizn'; the nav2d task family's keys: "
                                          "task.family, task.shots, task.queries, task.data_dir, task.horizon, "
                                          "task.gamma"):
        apply_overrides(cfg, ["task.horizn=5"])


def test_a_familys_own_checks_run_on_its_keys():
    cfg = apply_overrides(Config(), ["task.family=image_folder", "task.channels=2"])
    with pytest.raises(ConfigError, match="task.channels must be 1 .grey. or 3 .RGB., got 2"):
        validate(cfg)
    cfg = apply_overrides(Config(), ["task.family=omniglot", "task.episodes=by_stroke"])
    with pytest.raises(ConfigError, match="unknown task.episodes 'by_stroke'; choose one of: random, within_alphabet"):
        validate(cfg)


def test_the_family_is_applied_before_its_keys_in_a_file():
    cfg = config_from_dict({"task": {"ways": 20, "family": "omniglot"}})
    assert validate(cfg).task.ways == 20 and cfg.task.resolved()["ways"] == 20


def test_a_run_writes_only_its_familys_keys_and_the_layout_version(tmp_path):
    out = tmp_path / "sin"
    assert main(["train", "sinusoid", "--out", str(out), "--steps", "2", "--quiet", "--set", "train.val_every=2",
                 "--set", "train.val_tasks=4", "--set", "train.log_every=1", "--set", "task.amplitude=[1,2]"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["version"] == CONFIG_VERSION
    assert list(saved["task"]) == [*SHARED_TASK_KEYS, "amplitude", "phase", "x_range"]
    assert saved["task"]["amplitude"] == [1.0, 2.0]
    assert Run.open(out).load_config().task.amplitude == [1.0, 2.0]


def test_version_1_run_configs_migrate_to_the_current_layout(tmp_path):
    v1 = {"task": dict(V1_TASK), "algo": {"name": "maml", "inner_lr": 0.01}, "train": {"steps": 7}}
    migrated = migrate_config(v1)
    assert v1["task"] == V1_TASK and "version" not in v1           # the input is not changed
    assert migrated["version"] == CONFIG_VERSION
    assert set(migrated["task"]) == {*SHARED_TASK_KEYS, "amplitude", "phase", "x_range"}
    assert migrated["task"]["amplitude"] == [0.5, 2.0] and migrated["train"] == {"steps": 7}
    assert migrate_config(migrated) == migrated                     # the current layout is left as it is
    # a run folder of version 1 opens, with its own family's values
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(v1))
    cfg = validate(Run.open(run).load_config())
    assert cfg.task.amplitude == [0.5, 2.0] and cfg.train.steps == 7 and "ways" not in cfg.task.options
    # an omniglot run of version 1 keeps its image keys
    omni = dict(V1_TASK, family="omniglot", ways=20, protocol="lake")
    cfg = config_from_dict(migrate_config({"task": omni}))
    assert (cfg.task.ways, cfg.task.protocol) == (20, "lake") and "horizon" not in cfg.task.options


def test_a_config_file_of_another_layout_is_refused():
    with pytest.raises(ConfigError, match="newer than this metalearn reads"):
        config_from_dict({"version": CONFIG_VERSION + 1})
    with pytest.raises(ConfigError, match="a config file of your own should drop the 'version' key"):
        config_from_dict({"version": 1, "task": {"family": "sinusoid"}})


def test_every_family_specific_key_reads_as_its_default_until_set():
    cfg = Config()
    for key, option in task_options().items():
        if key in get_task_family(cfg.task.family).task_keys():
            assert getattr(cfg.task, key) == option.default
    cfg.task.amplitude.append(9.0)     # a default is never shared between configs
    assert Config().task.amplitude == [0.1, 5.0]


def test_switching_the_family_of_a_preset_keeps_only_the_keys_the_new_family_has():
    cfg = apply_overrides(load_preset("omniglot-5w1s"), ["task.family=image_folder", "task.channels=3"])
    assert "protocol" not in cfg.task.options and cfg.task.ways == 5 and cfg.task.channels == 3
    validate(cfg)
    cfg = apply_overrides(load_preset("omniglot-5w1s"), ["task.family=mnist", "task.classes=[0,1,2]"])
    assert validate(cfg).task.classes == [0, 1, 2] and cfg.task.shots == 1


def test_each_model_declares_its_keys_and_refuses_another_models(capsys, tmp_path):
    from metalearn.models import get_model
    assert get_model("conv4").model_keys() == ["width"] and "init_std" in get_model("policy").model_keys()
    assert [f.name for f in dataclasses.fields(Config().model)] == ["name", "options"]
    cli_error(capsys, ["train", "sinusoid", "--out", str(tmp_path / "r"), "--set", "model.width=8"],
              "model.width is not a key of the mlp model (it belongs to conv4); the mlp model's keys: model.name, "
              "model.hidden, model.activation, model.wide")
    with pytest.raises(ConfigError, match="unknown config key 'model.widht'; the conv4 model's keys: model.name, "
                                          "model.width"):
        apply_overrides(load_preset("omniglot-5w1s"), ["model.widht=8"])
    # switching the model drops the previous one's keys
    cfg = apply_overrides(load_preset("omniglot-5w1s"), ["model.name=mlp", "task.family=sinusoid"])
    assert validate(cfg).model.resolved() == {"name": "mlp", "hidden": [40, 40], "activation": "relu", "wide": False}


def test_version_1_model_sections_migrate():
    v1 = {"model": {"name": "conv4", "hidden": [40, 40], "activation": "relu", "wide": False, "width": 32,
                    "lstm_hidden": 20, "preprocess_p": 10.0, "output_scale": 0.1, "init_std": 1.0},
          "task": dict(V1_TASK, family="omniglot")}
    cfg = validate(config_from_dict(migrate_config(v1)))
    assert cfg.model.width == 32 and cfg.model.options == {"width": 32}
