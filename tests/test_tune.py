"""``metalearn tune``: search spaces, pruning, resumable studies, a killed trial retried, outputs."""
import time

import pytest
import yaml
from cli_helpers import cli_error

from metalearn.cli.main import main
from metalearn.config import Config, load_preset
from metalearn.tune.study import default_space, parse_space

optuna = pytest.importorskip("optuna")

SMALL = ["--set", "train.steps=120", "--set", "train.val_every=20", "--set", "train.val_tasks=20",
         "--set", "train.log_every=20", "--set", "train.ckpt_every=60", "--quiet"]


def test_space_parsing_and_checks():
    base = load_preset("sinusoid")
    d = parse_space("algo.inner_lr=log:0.001:0.1", base)
    assert (d.kind, d.low, d.high) == ("log", 0.001, 0.1)
    assert parse_space("train.meta_batch=choice:4,8", base).choices == (4, 8)
    assert parse_space("algo.inner_steps=int:1:5", base).kind == "int"
    for bad, needle in (("algo.inner_lr=exp:1:2", "unknown distribution"), ("algo.inner_lr=log:0:1", "LOW > 0"),
                        ("algo.inner_lr=log:1", "expected log:LOW:HIGH"), ("algo.nope=log:1:2", "unknown config key"),
                        ("train.steps=float:1:2", "expected an integer"), ("train.lr", "KEY=DIST")):
        with pytest.raises(Exception, match=needle):
            parse_space(bad, base)
    # ProtoNets have no inner loop: no inner keys in their default space
    assert not any(k.startswith("algo.") for k in default_space(load_preset("omniglot-5w1s-protonet")))
    assert any(k.startswith("algo.inner_lr") for k in default_space(Config()))


def test_study_prunes_resumes_and_writes_best_config(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["tune", "sinusoid", "--out", str(out), "--trials", "5", "--space", "algo.inner_lr=log:0.0001:0.5",
            "--space", "train.lr=log:0.00001:0.01", *SMALL]
    assert main(argv) == 0
    study = optuna.load_study(study_name="metalearn:sinusoid", storage=f"sqlite:///{out / 'study.db'}")
    states = [t.state for t in study.trials]
    assert sum(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states) == 5
    # every trial is a normal run folder with its own config, whose values are the trial's
    for t in study.trials:
        cfg = yaml.safe_load((out / "trials" / f"{t.number:04d}" / "config.yaml").read_text())
        assert cfg["algo"]["inner_lr"] == pytest.approx(t.params["algo.inner_lr"])
    # pruned trials stopped early: fewer steps than the full run
    for t in study.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            assert t.user_attrs["steps"] < 120
    # the same command with more trials resumes the study
    argv[argv.index("--trials") + 1] = "7"
    assert main(argv) == 0
    study = optuna.load_study(study_name="metalearn:sinusoid", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 7
    best = study.best_trial
    text = (out / "best.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert cfg["algo"]["inner_lr"] == pytest.approx(best.params["algo.inner_lr"])
    assert "trial | state | value" in (out / "trials.md").read_text()
    assert (out / "history.png").is_file()
    # the best config trains as a preset file
    assert main(["train", "--config", str(out / "best.yaml"), "--out", str(tmp_path / "best_run"), "--steps", "20",
                 "--quiet"]) == 0
    assert yaml.safe_load((tmp_path / "best_run" / "config.yaml").read_text())["algo"]["inner_lr"] == \
        pytest.approx(best.params["algo.inner_lr"])
    cli_error(capsys, ["train", "sinusoid", "--config", str(out / "best.yaml")], "give a preset (sinusoid) or --config")
    cli_error(capsys, ["train", "--config", str(out / "nope.yaml")], "no such file; give a YAML config file")
    capsys.readouterr()


def test_a_killed_trial_is_retried_with_its_values(tmp_path, monkeypatch):
    import metalearn.tune.study as tune_mod
    monkeypatch.setattr(tune_mod, "HEARTBEAT_S", 1)
    monkeypatch.setattr(tune_mod, "GRACE_S", 1)
    out = tmp_path / "study"
    out.mkdir()
    base = load_preset("sinusoid")
    for o in ("train.steps=60", "train.val_every=20", "train.val_tasks=20", "train.log_every=20",
              "train.ckpt_every=60"):
        from metalearn.config import apply_overrides
        base = apply_overrides(base, [o])
    storage = tune_mod._storage(out, None)
    study = optuna.create_study(study_name="metalearn:sinusoid", storage=storage, direction="minimize")
    study.set_user_attr("config", yaml.safe_dump(base.to_dict(), sort_keys=True))
    trial = study.ask({"algo.inner_lr": optuna.distributions.FloatDistribution(0.001, 0.1, log=True)})
    storage.record_heartbeat(trial._trial_id)   # a process that started this trial, then was killed
    lost = trial.params["algo.inner_lr"]
    time.sleep(2.5)
    res = tune_mod.tune("sinusoid", base, out, trials=2, space=["algo.inner_lr=log:0.001:0.1"])
    study = optuna.load_study(study_name="metalearn:sinusoid", storage=f"sqlite:///{out / 'study.db'}")
    first = study.trials[0]
    assert first.state == optuna.trial.TrialState.FAIL          # not RUNNING forever
    retried = [t for t in study.trials[1:] if t.system_attrs.get("failed_trial") == first.number]
    assert retried and retried[0].params["algo.inner_lr"] == pytest.approx(lost)
    assert res.trials >= 2


def test_tune_bad_input(tmp_path, capsys):
    cli_error(capsys, ["tune", "sinusoid", "--out", str(tmp_path / "s"), "--trials", "2",
                       "--space", "algo.inner_lr=gamma:1:2"], "unknown distribution 'gamma'")
    cli_error(capsys, ["tune", "sinusoid", "--out", str(tmp_path / "s"), "--trials", "0"], "--trials must be positive")
    cli_error(capsys, ["tune", "sinusoid", "--out", str(tmp_path / "s"), "--trials", "2", "--pruner", "best"],
              "unknown pruner")
    assert main(["tune", "sinusoid", "--out", str(tmp_path / "a"), "--trials", "1", "--pruner", "none", *SMALL]) == 0
    cli_error(capsys, ["tune", "sinusoid-fomaml", "--out", str(tmp_path / "a"), "--trials", "1"],
              "holds metalearn:sinusoid, not metalearn:sinusoid-fomaml")
    cli_error(capsys, ["tune", "sinusoid", "--out", str(tmp_path / "a"), "--trials", "2", "--set", "train.steps=50"],
              "started from another config")
    cli_error(capsys, ["tune", "sinusoid", "--out", str(tmp_path / "a"), "--trials", "2", "--pruner", "none",
                       "--space", "train.meta_batch=choice:4,8", *SMALL],
              "searches ", "not train.meta_batch=choice:4,8")


def test_a_diverging_trial_is_pruned_and_the_study_goes_on(tmp_path):
    out = tmp_path / "study"
    # inner learning rates this large make 5 inner steps on sine waves overflow to inf
    assert main(["tune", "sinusoid", "--out", str(out), "--trials", "3", "--pruner", "none",
                 "--space", "algo.inner_lr=float:1000:2000", "--set", "algo.inner_steps=5", *SMALL]) == 2
    study = optuna.load_study(study_name="metalearn:sinusoid", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 3
    diverged = [t for t in study.trials if "stopped" in t.user_attrs]
    assert diverged and all(t.state == optuna.trial.TrialState.PRUNED for t in diverged)
    assert "became" in diverged[0].user_attrs["stopped"]


def test_a_resumed_or_shared_study_does_not_replay_its_seeded_values(tmp_path):
    """A seeded sampler started again from its seed would repeat the study's first trials (on
    resume, or in a second worker on the same storage): each process continues past them."""
    def values(out):
        study = optuna.load_study(study_name="metalearn:sinusoid", storage=f"sqlite:///{out / 'study.db'}")
        return [t.params["algo.inner_lr"] for t in study.trials]

    out = tmp_path / "study"
    argv = ["tune", "sinusoid", "--out", str(out), "--trials", "1", "--sampler", "random", "--pruner", "none",
            "--space", "algo.inner_lr=log:0.0001:0.5", *SMALL]
    argv[argv.index("train.steps=120")] = "train.steps=20"
    assert main(argv) == 0
    argv[argv.index("--trials") + 1] = "2"
    assert main(argv) == 0   # resumed: one more trial
    first, resumed = values(out)
    assert resumed != pytest.approx(first)
    # a fresh study with the same seed starts with the same value: the seed still fixes the stream
    fresh = tmp_path / "fresh"
    argv[argv.index("--out") + 1] = str(fresh)
    argv[argv.index("--trials") + 1] = "1"
    assert main(argv) == 0
    assert values(fresh) == pytest.approx([first])


def test_hyperband_rungs_are_validations(tmp_path):
    """Hyperband's resource is the trial's meta-steps, bounded by its first validation and its
    end: with validations every 20 of 120 steps its rungs are steps 20 and 60, so a pruned trial
    stops at one of them (Optuna's default, rungs at 1, 3, 9, 27, 81 steps, stops trials at
    steps 40 or 100, and never at 60)."""
    out = tmp_path / "study"
    assert main(["tune", "sinusoid", "--out", str(out), "--trials", "8", "--pruner", "hyperband",
                 "--space", "algo.inner_lr=log:0.00001:0.5", "--space", "train.lr=log:0.000001:0.01", *SMALL]) == 0
    study = optuna.load_study(study_name="metalearn:sinusoid", storage=f"sqlite:///{out / 'study.db'}")
    pruned = [t.user_attrs["steps"] for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert set(pruned) <= {20, 60}, pruned
    assert 60 in pruned, pruned     # the second rung is in use (the default's rungs make 60 impossible)
