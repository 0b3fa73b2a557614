import pytest

from metalearn.config import Config, apply_overrides, config_from_dict, load_preset, validate
from metalearn.errors import ConfigError


def test_overrides_are_typed():
    cfg = apply_overrides(Config(), ["train.steps=123", "algo.inner_lr=1", "model.hidden=[8, 8]",
                                     "task.queries=null"])
    assert cfg.train.steps == 123 and cfg.algo.inner_lr == 1.0 and isinstance(cfg.algo.inner_lr, float)
    assert cfg.model.hidden == [8, 8] and cfg.task.queries is None


@pytest.mark.parametrize("override, message", [
    ("train.stepz=1", r"unknown config key 'train.stepz'; valid keys here: train.steps"),
    ("trian.steps=1", r"unknown config key 'trian'; valid keys here: task, model, algo, train, eval"),
    ("train.steps=ten", r"train.steps: expected an integer, got 'ten'"),
    ("train.steps=1.5", r"expected an integer"),
    ("algo.inner_lr=fast", r"algo.inner_lr: expected a number"),
    ("model.hidden=40", r"expected a list of int"),
    ("train", r"--set expects key=value"),
    ("train=3", r"train: expected a section of keys"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Config(), [override])


def test_validate_rejects_out_of_range_values():
    for override, msg in [("task.shots=0", "task.shots must be positive"),
                          ("train.lr=-1", "train.lr must be a finite positive number, got -1.0"),
                          ("algo.inner_steps=-1", "inner_steps must be >= 0")]:
        with pytest.raises(ConfigError, match=msg):
            validate(apply_overrides(Config(), [override]))


def test_presets_and_unknown_preset():
    cfg = load_preset("sinusoid")
    assert (cfg.task.shots, cfg.model.hidden, cfg.algo.inner_lr, cfg.train.meta_batch, cfg.train.steps) == \
        (10, [40, 40], 0.01, 25, 70000)
    assert load_preset("sinusoid-fomaml").algo.mode == "first_order"
    with pytest.raises(ConfigError, match="unknown preset or task family 'sinusiod'; choose one of: fed-omniglot-5w1s, fed-remifentanil, glucose-30min.*sinusoid"):
        load_preset("sinusiod")


def test_yaml_file_config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  steps: 7\n")
    assert load_preset(str(p)).train.steps == 7
    p.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_preset(str(p))
    with pytest.raises(ConfigError, match="a config must be a mapping"):
        config_from_dict([1, 2])


def test_short_mode_caps_a_run_by_its_family_kind(monkeypatch):
    from metalearn.config import apply_overrides, load_preset, validate
    rl, l2l = load_preset("rl-nav2d"), load_preset("l2l-quadratic")
    monkeypatch.delenv("METALEARN_SHORT", raising=False)
    assert validate(apply_overrides(load_preset("rl-nav2d"), [])).train.steps == rl.train.steps == 100
    monkeypatch.setenv("METALEARN_SHORT", "1")
    short_rl = validate(apply_overrides(load_preset("rl-nav2d"), []))
    assert (short_rl.train.steps, short_rl.task.shots, short_rl.task.horizon, short_rl.eval.steps) == (3, 2, 20, [1, 2])
    short_l2l = validate(apply_overrides(load_preset("l2l-quadratic"), []))
    assert short_l2l.task.horizon == min(l2l.task.horizon, 20) and short_l2l.task.unroll == min(l2l.task.unroll, 5)
    assert short_l2l.task.shots == l2l.task.shots          # an optimizee's shots are not episodes
    monkeypatch.setenv("METALEARN_SHORT", "0")
    assert validate(apply_overrides(load_preset("rl-nav2d"), [])).train.steps == 100
