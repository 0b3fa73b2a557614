"""Bad values and bad data files: every one gets a single line that names the problem and the fix
(exit code 2 at the CLI), never a traceback or advice that cannot be followed."""
import dataclasses
import types
import typing

import numpy as np
import pytest
import torch
from cli_helpers import cli_error as error_line
from PIL import Image

from metalearn.training.build import build_model
from metalearn.cli.main import main
from metalearn.config import Config, apply_overrides, load_preset, validate
from metalearn.data.images import ImageDataset
from metalearn.errors import ConfigError
from metalearn.tasks import FewShotTasks
from metalearn.models.registry import model_options, models_with_key
from metalearn.tasks.registry import families_with_key, task_options

SINE = ["--steps", "2", "--quiet", "--set", "train.val_tasks=4", "--set", "train.meta_batch=2",
        "--set", "model.hidden=[8]"]


def write_png(path, rng, size=28):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path)
    return path


def image_folder(root, classes, per_class, seed=0):
    """``root/<class>/<i>.png``: random 28x28 grey PNGs."""
    rng = np.random.default_rng(seed)
    for c in classes:
        for i in range(per_class):
            write_png(root / c / f"{i}.png", rng)
    return root


def folder_argv(data, out, *extra):
    """A one-step image_folder run from the omniglot-5w1s preset (2-way 1-shot, 2 queries)."""
    return ["train", "omniglot-5w1s", "--out", str(out), "--steps", "1", "--quiet",
            "--set", "task.family=image_folder", "--set", f"task.data_dir={data}", "--set", "task.ways=2",
            "--set", "task.shots=1", "--set", "task.queries=2", "--set", "eval.queries=2",
            "--set", "model.width=8", "--set", "train.val_tasks=2", "--set", "train.meta_batch=1", *extra]


# -- 1. every float notation a person types ------------------------------------------------------

@pytest.mark.parametrize("text", ["1e-3", "1E-3", "1.5e+2", ".5", "-2e-1", "+1e-3", "1_000.5", "2", "0.001",
                                  "3.", "1e3"])
def test_float_notations_are_accepted(text):
    cfg = apply_overrides(Config(), [f"train.lr={text}", f"task.amplitude=[{text}, 5]",
                                     f"train.time_limit={text}"])
    assert cfg.train.lr == float(text) and isinstance(cfg.train.lr, float)
    assert cfg.task.amplitude == [float(text), 5.0] and cfg.train.time_limit == float(text)


@pytest.mark.parametrize("override, message", [
    ("train.lr=fast", "train.lr: expected a number such as 0.001 or 1e-3, got 'fast'"),
    ("train.lr=true", "train.lr: expected a number such as 0.001 or 1e-3, got True"),
    ("train.lr=1e-3x", "got '1e-3x'"),
    ("train.lr=[1]", "got [1]"),
    ("task.amplitude=[1, yes]", "task.amplitude: expected a number"),
    ("train.time_limit=soon", "train.time_limit: expected a number or null, got 'soon'"),
    ("task.phase=0.5", "task.phase: expected a list of numbers such as [1, 2], got 0.5"),
    ("train.steps=1e3", "train.steps: expected an integer, got '1e3'"),    # ints stay strict
    ("train.steps=1.0", "train.steps: expected an integer, got 1.0"),
])
def test_non_numbers_are_still_rejected(override, message):
    with pytest.raises(ConfigError) as err:
        apply_overrides(Config(), [override])
    assert message in str(err.value)


def test_yaml_files_take_exponent_floats(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr: 1e-3\n  min_lr: 1E-5\nalgo:\n  inner_lr: 4e-1\ntask:\n  x_range: [-5e0, 5e0]\n")
    cfg = validate(load_preset(str(p)))
    assert (cfg.train.lr, cfg.train.min_lr, cfg.algo.inner_lr, cfg.task.x_range) == (1e-3, 1e-5, 0.4, [-5.0, 5.0])


def test_exponent_learning_rate_trains(capsys, tmp_path):
    assert main(["train", "sinusoid", "--out", str(tmp_path / "r"), *SINE, "--set", "train.lr=1e-3",
                 "--set", "algo.inner_lr=1E-2"]) == 0, capsys.readouterr().err


# -- 2. non-finite numbers, in every float field ---------------------------------------------------

def float_fields():
    """``(dotted key, annotation)`` of every field of the config dataclasses that holds floats,
    read from the dataclasses, so that a new float field is covered without editing this test."""
    found = []

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{f.name}.")
            elif tp is float or float in typing.get_args(tp):
                found.append((f"{prefix}{f.name}", tp))
    walk(Config, "")
    # the task families' own keys (their settings dataclasses), each with a family that has it
    for section, options in (("task", task_options()), ("model", model_options())):
        for key, option in options.items():
            if option.type is float or float in typing.get_args(option.type):
                found.append((f"{section}.{key}", option.type))
    return found


FLOAT_FIELDS = float_fields()


def owner_family(key):
    """``["task.family=F"]`` for a family that declares the task key ``key``, ``["model.name=M",
    ...]`` for a model key (with a family of the model's kind); [] for other keys."""
    section, name = key.split(".")
    if section == "task":
        return [f"task.family={families_with_key(name)[0]}"]
    if section == "model":
        model = models_with_key(name)[0]
        family = {"lstm_optimizer": "quadratic", "policy": "nav2d"}.get(model, "sinusoid")
        return [f"task.family={family}", f"model.name={model}"]
    return []


def test_float_fields_are_found():
    keys = {k for k, _ in FLOAT_FIELDS}
    assert {"train.lr", "train.min_lr", "train.time_limit", "algo.inner_lr", "task.amplitude", "task.phase",
            "task.x_range", "task.gamma", "task.split", "model.preprocess_p", "model.output_scale"} <= keys


def bad_value(tp, text):
    """``text`` as the value of a field of type ``tp`` (inside a list for list fields)."""
    return f"[0.5, {text}]" if typing.get_origin(tp) is list else text


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf", "nan", "inf", "-inf", ".NaN", "1e999"])
@pytest.mark.parametrize("key, tp", FLOAT_FIELDS, ids=[k for k, _ in FLOAT_FIELDS])
def test_non_finite_floats_are_rejected_at_validation(key, tp, text):
    cfg = apply_overrides(Config(), [*owner_family(key), f"{key}={bad_value(tp, text)}"])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{key} must ") and "finite" in message and f"use e.g. --set {key}=" in message


@pytest.mark.parametrize("key, tp", FLOAT_FIELDS, ids=[k for k, _ in FLOAT_FIELDS])
def test_non_finite_floats_set_in_python_are_rejected(key, tp):
    """A Config built in Python (no --set parsing) is checked as well."""
    cfg = apply_overrides(Config(), owner_family(key))
    section, name = key.split(".")
    setattr(getattr(cfg, section), name, [0.5, float("nan")] if typing.get_origin(tp) is list else float("inf"))
    with pytest.raises(ConfigError, match=f"^{key} must .*finite"):
        validate(cfg)


@pytest.mark.parametrize("override, message", [
    ("algo.inner_lr=.nan", "algo.inner_lr must be a finite positive number, got nan; use e.g. --set algo.inner_lr=0.01"),
    ("train.lr=.nan", "train.lr must be a finite positive number, got nan; use e.g. --set train.lr=0.001"),
    ("train.lr=.inf", "train.lr must be a finite positive number, got inf"),
    ("train.lr=-.inf", "train.lr must be a finite positive number, got -inf"),
    ("train.lr=inf", "train.lr must be a finite positive number, got inf"),
    ("train.lr=-1e-3", "train.lr must be a finite positive number, got -0.001"),
    ("algo.inner_lr=0", "algo.inner_lr must be a finite positive number, got 0.0"),
    ("train.min_lr=-1e-5", "train.min_lr must be a finite number >= 0, got -1e-05"),
    ("train.time_limit=.inf", "train.time_limit must be a finite positive number, got inf; use e.g. "
                              "--set train.time_limit=60 (minutes), or null for no limit"),
    ("task.amplitude=[0.1, .inf]", "task.amplitude must hold finite numbers, got [0.1, inf]; "
                                   "use e.g. --set task.amplitude=[0.1,5]"),
    ("task.phase=[nan, 1]", "task.phase must hold finite numbers, got [nan, 1.0]"),
])
def test_cli_rejects_non_finite_and_out_of_range_floats(capsys, tmp_path, override, message):
    line = error_line(capsys, ["train", "sinusoid", "--out", str(tmp_path / "r"), *SINE, "--set", override])
    assert message in line
    assert not (tmp_path / "r").exists(), "rejected before anything is written"


def test_time_limit_null_is_still_allowed():
    assert validate(apply_overrides(Config(), ["train.time_limit=null"])).train.time_limit is None


# -- 3. images too small for conv4 -------------------------------------------------------------------

def test_image_size_too_small_for_conv4_names_the_minimum(capsys, tmp_path):
    line = error_line(capsys, ["train", "omniglot-5w1s", "--out", str(tmp_path / "r"), "--quiet",
                               "--set", "task.image_size=3"])
    assert "task.image_size=3 is too small for the conv4 model" in line
    assert "use --set task.image_size=16 or larger" in line


def test_conv4_minimum_image_size_is_the_real_one():
    """16 builds and runs; 15 is refused by validate and by build_model with the same advice."""
    cfg = load_preset("omniglot-5w1s")
    validate(apply_overrides(cfg, ["task.image_size=16"]))
    with pytest.raises(ConfigError, match="task.image_size=15 is too small.*task.image_size=16"):
        validate(apply_overrides(load_preset("omniglot-5w1s"), ["task.image_size=15"]))
    cfg.model.width = 4
    model = build_model(cfg, types.SimpleNamespace(input_shape=(1, 16, 16), output_dim=5))
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 5)
    with pytest.raises(ConfigError, match="task.image_size=15 is too small.*task.image_size=16"):
        build_model(cfg, types.SimpleNamespace(input_shape=(1, 15, 15), output_dim=5))
    with pytest.raises(ConfigError, match="task.image_size=8 is too small"):
        build_model(cfg, types.SimpleNamespace(input_shape=(1, 8, 8), output_dim=5), encoder_only=True)


# -- 4. channels ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [0, 2, 4])
def test_channels_other_than_1_or_3_are_rejected(channels):
    with pytest.raises(ConfigError, match=f"task.channels must be 1 \\(grey\\) or 3 \\(RGB\\), got {channels}; "
                                          "use --set task.channels=1"):
        validate(apply_overrides(Config(), ["task.family=image_folder", f"task.channels={channels}"]))


def test_channels_2_at_the_cli(capsys, tmp_path):
    data = image_folder(tmp_path / "data", [f"c{i:02d}" for i in range(20)], 3)
    line = error_line(capsys, folder_argv(data, tmp_path / "r", "--set", "task.channels=2"))
    assert "task.channels must be 1 (grey) or 3 (RGB), got 2" in line


# -- 5. image-folder classes too small for the episodes, in any split ----------------------------

SPLITS = {"train": 6, "val": 3, "test": 3}


@pytest.mark.parametrize("split, kept", [("train", [1]), ("val", [2]), ("test", [1]), ("test", [1, 2])])
def test_small_class_in_any_split_fails_training_naming_the_folder(capsys, tmp_path, split, kept):
    """Named train/val/test folders of 3 images per class; classes 1.. of ``split`` keep ``kept`` images."""
    data = tmp_path / "data"
    for s, n in SPLITS.items():
        image_folder(data / s, [f"{s}{i}" for i in range(n)], 3, seed=len(s))
    small = [data / split / f"{split}{i + 1}" for i in range(len(kept))]
    for folder, n in zip(small, kept):
        for f in sorted(folder.iterdir())[n:]:
            f.unlink()
    line = error_line(capsys, folder_argv(data, tmp_path / "r"))
    need = ("2-way 1-shot episodes with 2 queries need shots + queries = 3 images per class; add images or lower "
            "the shots or queries (task.shots, task.queries, eval.queries)")
    if len(small) == 1:
        n = kept[0]
        assert f"image folder class {small[0]} has {n} image{'s' if n > 1 else ''} but {need}" in line
    else:
        assert f"2 image folder classes have fewer than 3 images: {small[0]} (1 image), {small[1]} (2 images); " \
               f"{need}" in line
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_small_class_in_a_flat_folder_is_named_whatever_split_it_lands_in(capsys, tmp_path):
    data = image_folder(tmp_path / "data", [f"c{i:02d}" for i in range(20)], 3)
    for f in sorted((data / "c07").iterdir())[1:]:
        f.unlink()
    line = error_line(capsys, folder_argv(data, tmp_path / "r"))
    assert f"image folder class {data / 'c07'} has 1 image but 2-way 1-shot episodes with 2 queries" in line


def test_evaluate_names_the_small_test_class(capsys, image_run, tmp_path):
    """A test split that shrank after training: evaluate names the class, too."""
    import shutil

    import yaml

    from metalearn.tasks.few_shot.image_families import folder_split
    data = tmp_path / "data"
    shutil.copytree(image_run.data, data)
    victim = folder_split("test", data, 28, 1)[0].class_names[0]
    for f in sorted((data / victim).iterdir())[1:]:
        f.unlink()
    run = tmp_path / "run"
    shutil.copytree(image_run.run, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["task"]["data_dir"] = str(data)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    line = error_line(capsys, ["evaluate", str(run), "--quiet", "--episodes", "2"])
    assert f"image folder class {data / victim} has 1 image but 2-way 1-shot episodes with 1 query need " \
           f"shots + queries = 2 images per class" in line


def test_few_shot_tasks_message_for_datasets_without_folders():
    per_class = [torch.zeros(n, 1, 4, 4, dtype=torch.uint8) for n in (5, 3, 5)]
    with pytest.raises(ConfigError, match="shots \\+ queries = 4 but the smallest class has 3 images; "
                                          "use shots \\+ queries <= 3"):
        FewShotTasks(ImageDataset.from_class_lists(per_class, ["a", "b", "c"]), 2, 2, 2)
    with pytest.raises(ConfigError, match="image folder class /d/b has 3 images but 2-way 2-shot"):
        FewShotTasks(ImageDataset.from_class_lists(per_class, ["a", "b", "c"], root="/d"), 2, 2, 2)
    sub = ImageDataset.from_class_lists(per_class, ["a", "b", "c"], root="/d").subset([1])
    assert sub.root == "/d" and sub.class_source(0) == "/d/b"


# -- 6. unreadable images at adapt (and in training data) ------------------------------------------

@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A one-step 2-way image_folder run over 20 classes of random PNGs (no shared data needed)."""
    base = tmp_path_factory.mktemp("imagerun")
    data = image_folder(base / "data", [f"c{i:02d}" for i in range(20)], 4)
    out = base / "run"
    assert main(["train", "omniglot-5w1s", "--out", str(out), "--steps", "1", "--quiet",
                 "--set", "task.family=image_folder", "--set", f"task.data_dir={data}", "--set", "task.ways=2",
                 "--set", "task.shots=1", "--set", "task.queries=1", "--set", "model.width=8",
                 "--set", "train.val_tasks=2", "--set", "train.meta_batch=1"]) == 0
    return types.SimpleNamespace(run=out, data=data)


def episode(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    sup, qry = tmp_path / "support", tmp_path / "query"
    for c in ("a", "b"):
        write_png(sup / c / "1.png", rng)
        write_png(sup / c / "2.png", rng)
        write_png(qry / c / "q.png", rng)
    return sup, qry


def spoil(path, how):
    data = path.read_bytes()
    path.write_bytes(b"" if how == "empty" else data[: len(data) // 2])


def test_adapt_on_good_images(capsys, image_run, tmp_path):
    sup, qry = episode(tmp_path)
    for resize in ([], ["--resize"]):
        assert main(["adapt", str(image_run.run), "--support", str(sup), "--query", str(qry),
                     "--out", str(tmp_path / "p.csv"), *resize]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("resize", [False, True], ids=["same-size", "resize"])
@pytest.mark.parametrize("where", ["support/a/2.png", "query/b/q.png"])
@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_adapt_names_an_unreadable_image(capsys, image_run, tmp_path, how, where, resize):
    sup, qry = episode(tmp_path)
    spoil(tmp_path / where, how)
    line = error_line(capsys, ["adapt", str(image_run.run), "--support", str(sup), "--query", str(qry),
                               "--out", str(tmp_path / "p.csv"), *(["--resize"] if resize else [])])
    assert f"cannot read image {tmp_path / where}: " in line and line.endswith("; replace or remove it")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_training_data_with_an_unreadable_image_is_named(capsys, tmp_path, how):
    data = image_folder(tmp_path / "data", [f"c{i:02d}" for i in range(20)], 3)
    spoil(data / "c05" / "1.png", how)
    line = error_line(capsys, folder_argv(data, tmp_path / "r"))
    assert f"cannot read image {data / 'c05' / '1.png'}: " in line and line.endswith("; replace or remove it")
