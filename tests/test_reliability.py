"""A run folder is enough to use a run again, and no silent wrong number (tables, tuning, report,
CLI): each case of the reliability probe, as a test that failed before its fix."""
import json
import shutil

import numpy as np
import pytest
from cli_helpers import cli_error
from test_tables import make_table

from metalearn.cli.main import main

pd = pytest.importorskip("pandas")


def _train_table(root, *sets, steps=20):
    argv = ["train", "table", "--out", str(root / "run"), "--quiet", "--set", f"task.data={root / 'groups.csv'}",
            "--set", "task.group=patient", "--set", "task.target=y", "--set", "task.time=t",
            "--set", "task.shots=6", "--set", "task.queries=6", "--set", f"train.steps={steps}",
            "--set", "train.val_every=10", "--set", "train.ckpt_every=10", "--set", "eval.support_sizes=[4]",
            "--set", "eval.steps=[1]"]
    for s in sets:
        argv += ["--set", s]
    return main(argv)


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliable")
    make_table(root / "groups.csv", groups=24, rows=16)
    assert _train_table(root) == 0
    return root


def _support_query(root, tmp):
    df = pd.read_csv(root / "groups.csv")
    g = df[df.patient == "p03"]
    g.iloc[:6].to_csv(tmp / "support.csv", index=False)
    g.iloc[6:].drop(columns=["y"]).to_csv(tmp / "query.csv", index=False)


def _adapt(run, tmp, out):
    return main(["adapt", str(run), "--support", str(tmp / "support.csv"), "--query", str(tmp / "query.csv"),
                 "--out", str(out)])


def test_a_table_run_holds_its_encoder_split_and_data_hash(tmp_path, capsys, monkeypatch):
    """Case 1: appending groups to the training file changed adapt's predictions and moved test
    groups into meta-training; a different file of the same name in another folder was used."""
    root = tmp_path / "own"
    root.mkdir()
    make_table(root / "groups.csv", groups=24, rows=16)
    assert _train_table(root) == 0
    run = root / "run"
    fitted = json.loads((run / "fitted.json").read_text())
    assert set(fitted["split"]) == {"train", "validation", "test"} and len(fitted["data"]["sha256"]) == 64
    assert sorted(sum(fitted["split"].values(), [])) == sorted({f"p{g:02d}" for g in range(24)})
    _support_query(root, tmp_path)
    assert _adapt(run, tmp_path, tmp_path / "before.csv") == 0
    assert main(["evaluate", str(run), "--quiet", "--no-baseline"]) == 0
    before_groups = json.loads((run / "eval" / "groups.json").read_text())["groups"]
    capsys.readouterr()
    # the training file grows by 40 groups: adapt gives the same predictions, evaluate refuses
    df = pd.read_csv(root / "groups.csv")
    more = make_table(tmp_path / "more.csv", groups=40, rows=16, seed=5)
    more["patient"] = "n" + more["patient"]
    pd.concat([df, more]).to_csv(root / "groups.csv", index=False)
    assert _adapt(run, tmp_path, tmp_path / "after.csv") == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "before.csv"), pd.read_csv(tmp_path / "after.csv"))
    err = cli_error(capsys, ["evaluate", str(run), "--no-baseline"], "has changed since the run was trained",
                    fitted["data"]["sha256"])
    assert "now" in err
    # from another folder, with the training file gone: adapt still works; evaluate names the file
    (root / "groups.csv").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    make_table(elsewhere / "groups.csv", groups=10, seed=9)   # a different file of the same name
    monkeypatch.chdir(elsewhere)
    assert _adapt(run, tmp_path, tmp_path / "moved.csv") == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "before.csv"), pd.read_csv(tmp_path / "moved.csv"))
    cli_error(capsys, ["evaluate", str(run), "--no-baseline"], "which is missing now", "groups.csv")
    # the file put back: the same groups are evaluated
    df.to_csv(root / "groups.csv", index=False)
    assert main(["evaluate", str(run), "--quiet", "--no-baseline"]) == 0
    assert json.loads((run / "eval" / "groups.json").read_text())["groups"] == before_groups


def test_non_finite_and_overflowing_values_are_refused_or_filled_with_a_warning(table_run, tmp_path, capsys):
    """Case 2: an inf or 1e308 support target gave blank predictions with exit 0, 1e308 in a query
    feature blanked the row, a 1e308 training target trained a model of zeros, and inf in a
    training file ended with the advice to lower train.lr."""
    root = table_run
    _support_query(root, tmp_path)
    support = pd.read_csv(tmp_path / "support.csv")
    for value in (np.inf, 1e308):
        bad = support.copy()
        bad.loc[2, "y"] = value
        bad.to_csv(tmp_path / "bad_support.csv", index=False)
        cli_error(capsys, ["adapt", str(root / "run"), "--support", str(tmp_path / "bad_support.csv"), "--query",
                           str(tmp_path / "query.csv")], "'y'", "row 2", repr(float(value)))
    query = pd.read_csv(tmp_path / "query.csv")
    query.loc[1, "x1"] = 1e308
    query.to_csv(tmp_path / "big_query.csv", index=False)
    with pytest.warns(UserWarning, match="non-finite") as said:
        assert main(["adapt", str(root / "run"), "--support", str(tmp_path / "support.csv"), "--query",
                     str(tmp_path / "big_query.csv"), "--out", str(tmp_path / "pred.csv")]) == 0
    assert not any("missing" in str(w.message) for w in said)
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert pred["predicted_y"].notna().all() and np.isfinite(pred["predicted_y"]).all()
    # training files: refused before any step, naming column, row and value
    df = pd.read_csv(root / "groups.csv")
    for column, value, needle in (("y", 1e308, "'y'"), ("x1", np.inf, "'x1'"), ("y", -np.inf, "'y'")):
        bad = df.copy()
        bad.loc[7, column] = value
        (tmp_path / "t").mkdir(exist_ok=True)
        bad.to_csv(tmp_path / "t" / "groups.csv", index=False)
        err = cli_error(capsys, ["train", "table", "--out", str(tmp_path / "t" / "run"), "--quiet", "--set",
                                 f"task.data={tmp_path / 't' / 'groups.csv'}", "--set", "task.group=patient",
                                 "--set", "task.target=y", "--set", "train.steps=2"], needle, "row 7")
        assert "train.lr" not in err
        assert not (tmp_path / "t" / "run").exists()


def test_rows_without_a_group_duplicate_columns_and_a_fixed_target(tmp_path, capsys):
    """Case 3: rows with a missing group value were dropped without a word (pandas' groupby), a
    column named twice became 'dose.1', and a preset with a fixed target ignored task.target."""
    df = make_table(tmp_path / "groups.csv", groups=20, rows=14)
    df.loc[[3, 17, 40], "patient"] = np.nan
    df.to_csv(tmp_path / "groups.csv", index=False)
    with pytest.warns(UserWarning) as said:
        assert _train_table(tmp_path, steps=2) == 0
    texts = [str(w.message) for w in said if "no 'patient' value" in str(w.message)]
    assert len(texts) == 1 and texts[0].startswith("3 of 280 rows"), texts
    text = (tmp_path / "groups.csv").read_text().splitlines()
    (tmp_path / "dup.csv").write_text("\n".join([text[0].replace("x2", "x1"), *text[1:]]) + "\n")
    cli_error(capsys, ["train", "table", "--out", str(tmp_path / "dup"), "--set", f"task.data={tmp_path / 'dup.csv'}",
                       "--set", "task.group=patient", "--set", "task.target=y"], "names the column 'x1' twice")
    for preset in ("glucose-30min", "remifentanil"):
        cli_error(capsys, ["train", preset, "--out", str(tmp_path / preset), "--set", "task.target=cgm"],
                  "task.target is not a key of the", "family")


def test_tiny_groups_are_skipped_and_counted_in_evaluation_with_each_warning_once(tmp_path, capsys):
    """Case 4: a table whose small groups training skipped could not be evaluated ("group ... has 1
    rows, so 2 support rows leave no query row"), and the training warning was printed three times."""
    df = make_table(tmp_path / "groups.csv", groups=40, rows=12)
    sizes = {f"p{g:02d}": 1 + g % 3 for g in range(0, 40, 4)}   # every fourth group: 1-3 rows
    keep = [df[df.patient == p].iloc[:sizes.get(p, 12)] for p in sorted(df.patient.unique())]
    pd.concat(keep).to_csv(tmp_path / "groups.csv", index=False)
    with pytest.warns(UserWarning) as said:
        assert _train_table(tmp_path, "task.shots=2", "task.queries=2", "eval.support_sizes=[2]", steps=4) == 0
        assert main(["evaluate", str(tmp_path / "run"), "--quiet", "--no-baseline"]) == 0
    texts = [str(w.message) for w in said]
    assert len(texts) == len(set(texts)), texts           # each said once
    assert any("left out, as in training" in t for t in texts), texts
    res = json.loads((tmp_path / "run" / "eval" / "groups.json").read_text())
    assert res["skipped"] and all(rows <= 2 for rows in res["skipped"].values())
    assert not set(res["skipped"]) & set(res["groups"])
    md = (tmp_path / "run" / "eval" / "groups.md").read_text()
    assert f"{len(res['skipped'])} of {len(res['skipped']) + len(res['groups'])} held-out groups" in md


TUNE_SMALL = ["--set", "train.steps=40", "--set", "train.val_every=20", "--set", "train.val_tasks=10",
              "--set", "train.log_every=20", "--set", "train.ckpt_every=40", "--quiet", "--pruner", "none",
              "--space", "algo.inner_lr=log:0.001:0.1"]


def test_tune_refuses_trial_folders_of_another_study(tmp_path, capsys):
    """Case 5a: after a lost study.db every trial was 'pruned (diverged)' because its folder held a run."""
    pytest.importorskip("optuna")
    out = tmp_path / "study"
    assert main(["tune", "sinusoid", "--out", str(out), "--trials", "1", *TUNE_SMALL]) == 0
    (out / "study.db").unlink()
    cli_error(capsys, ["tune", "sinusoid", "--out", str(out), "--trials", "2", *TUNE_SMALL],
              "holds runs of 1 trials that the study's storage does not know", "0000")


def test_a_trial_left_running_by_a_killed_process_is_retried_at_once(tmp_path):
    """Case 5b: a re-run inside the heartbeat's grace period left a phantom RUNNING trial in trials.md."""
    optuna = pytest.importorskip("optuna")
    import yaml

    import metalearn.tune.study as tune_mod
    from metalearn.config import apply_overrides, load_preset
    out = tmp_path / "study"
    out.mkdir()
    base = apply_overrides(load_preset("sinusoid"), ["train.steps=40", "train.val_every=20", "train.val_tasks=10",
                                                     "train.log_every=20", "train.ckpt_every=40"])
    storage = tune_mod._storage(out, None)
    study = optuna.create_study(study_name="metalearn:sinusoid", storage=storage, direction="minimize")
    study.set_user_attr("config", yaml.safe_dump(base.to_dict(), sort_keys=True))
    trial = study.ask({"algo.inner_lr": optuna.distributions.FloatDistribution(0.001, 0.1, log=True)})
    storage.record_heartbeat(trial._trial_id)           # a process that was training this trial just now,
    folder = out / "trials" / "0000"                     # then was killed: its lock file is left behind
    folder.mkdir(parents=True)
    (folder / ".lock").write_text('{"pid": 1, "host": "x", "started": 0}')
    trial.set_user_attr("run", str(folder))
    lost = trial.params["algo.inner_lr"]
    res = tune_mod.tune("sinusoid", base, out, trials=1, space=["algo.inner_lr=log:0.001:0.1"])
    study = optuna.load_study(study_name="metalearn:sinusoid", storage=f"sqlite:///{out / 'study.db'}")
    assert study.trials[0].state == optuna.trial.TrialState.FAIL
    retried = [t for t in study.trials[1:] if t.system_attrs.get("failed_trial") == 0]
    assert retried and retried[0].params["algo.inner_lr"] == pytest.approx(lost)
    assert retried[0].state == optuna.trial.TrialState.COMPLETE
    assert "running" not in res.table.read_text()


def test_report_never_trains_the_baseline(tmp_path, capsys):
    """Case 6: report trained the full pretrained baseline when RUN/baseline was missing, even after
    evaluate --no-baseline (12,000 steps for a sinusoid run)."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    small = ["--set", "train.val_tasks=10", "--set", "eval.tasks=10", "--set", "train.val_every=20",
             "--set", "train.log_every=20", "--quiet"]
    assert main(["train", "sinusoid", "--out", str(out), "--steps", "20", *small]) == 0
    capsys.readouterr()
    assert main(["report", str(out)]) == 0                      # not evaluated yet: evaluated without it
    assert not (out / "baseline").exists()
    assert "'metalearn evaluate" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--quiet", "--no-baseline"]) == 0
    assert main(["report", str(out)]) == 0
    assert not (out / "baseline").exists()
    err = capsys.readouterr().err
    assert "without the pretrain baseline" in err and "'metalearn evaluate" in err
    assert (out / "report" / "tasks.png").is_file()


def test_threads_follow_the_free_cores_unless_the_user_sets_them(tmp_path, capsys, monkeypatch):
    """Case 7: a preset's 2 threads ran 15x slower beside a busy process, with a note but the slow
    setting kept; evaluate took the run's thread count with no option and no word."""
    import torch

    import metalearn.cli.evaluate as cli_evaluate
    import metalearn.cli.train as cli_train
    from metalearn._util.threads import choose_threads
    from metalearn.runs import Run
    assert choose_threads(2, False, 1.0, cores=2)[0] == 1
    assert choose_threads(2, False, 0.1, cores=2) == (2, None)
    assert choose_threads(2, True, 1.0, cores=2)[0] == 2        # the user's own count is kept (with advice)
    assert choose_threads(4, False, None, cores=8) == (4, None)   # unknown load: as configured
    monkeypatch.setattr(cli_train, "busy_cores", lambda interval=0.3: 1.0)
    monkeypatch.setattr(cli_evaluate, "busy_cores", lambda interval=0.3: 1.0)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    tiny = ["--steps", "1", "--quiet", "--set", "task.horizon=5", "--set", "task.shots=2", "--set", "train.meta_batch=2",
            "--set", "train.val_tasks=2", "--set", "eval.tasks=2", "--set", "model.hidden=[8]"]
    before = torch.get_num_threads()
    try:
        assert main(["train", "rl-nav2d", "--out", str(tmp_path / "a"), *tiny]) == 0
        err = capsys.readouterr().err
        assert "uses 1 thread instead of 2" in err and "--set train.threads=2 keeps 2" in err
        assert Run(tmp_path / "a").load_config().train.threads == 1
        assert main(["train", "rl-nav2d", "--out", str(tmp_path / "b"), *tiny, "--set", "train.threads=2"]) == 0
        assert Run(tmp_path / "b").load_config().train.threads == 2
        assert main(["evaluate", str(tmp_path / "b"), "--quiet", "--no-baseline", "--tasks", "2"]) == 0
        assert "uses 1 thread instead of 2" in capsys.readouterr().err and torch.get_num_threads() == 1
        assert main(["evaluate", str(tmp_path / "b"), "--quiet", "--no-baseline", "--tasks", "2", "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2 and "OMP_WAIT_POLICY" in capsys.readouterr().err   # advice only
        cli_error(capsys, ["evaluate", str(tmp_path / "b"), "--threads", "0"], "--threads must be a positive")
    finally:
        torch.set_num_threads(before)


def test_tracebacks_of_the_probe_are_one_line_errors(table_run, tmp_path, capsys):
    """The probe's tracebacks: a text target in adapt --support, tune --space with a bracket or a
    YAML tag, a preset file's YAML error (4 lines), adapt --out DIR (named a temporary file, after
    adapting)."""
    root = table_run
    _support_query(root, tmp_path)
    support = pd.read_csv(tmp_path / "support.csv")
    support["y"] = support["y"].astype(object)
    support.loc[1, "y"] = "high"
    support.to_csv(tmp_path / "text.csv", index=False)
    cli_error(capsys, ["adapt", str(root / "run"), "--support", str(tmp_path / "text.csv"), "--query",
                       str(tmp_path / "query.csv")], "target 'y'", "row 1: 'high'")
    (tmp_path / "outdir").mkdir()
    err = cli_error(capsys, ["adapt", str(root / "run"), "--support", str(tmp_path / "support.csv"), "--query",
                             str(tmp_path / "query.csv"), "--out", str(tmp_path / "outdir")], "is a folder")
    assert ".tmp" not in err and not list((tmp_path / "outdir").iterdir())
    for space, needle in (("algo.inner_lr=choice:[1,2", "without brackets"),
                          ("train.meta_batch=choice:!!python/object/apply:os.system [echo],4", "not a plain value")):
        cli_error(capsys, ["tune", "sinusoid", "--out", str(tmp_path / "s"), "--trials", "1", "--space", space], needle)
    (tmp_path / "bad.yaml").write_text("task:\n  family: sinusoid\n  shots: [1,\n")
    cli_error(capsys, ["train", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "b")], "not valid YAML", "line 4")


def test_promp_with_a_huge_learning_rate_stops_with_one_line(tmp_path, capsys):
    """ProMP with train.lr=1e30: a non-finite observation reached torch.linalg.lstsq before the
    finiteness check (an internal assertion of PyTorch)."""
    cli_error(capsys, ["train", "rl-nav2d", "--out", str(tmp_path / "p"), "--algo", "promp", "--steps", "4", "--quiet",
                       "--set", "train.lr=1e30", "--set", "task.shots=4", "--set", "train.meta_batch=2",
                       "--set", "train.val_tasks=2", "--set", "train.val_every=2", "--set", "train.threads=1"],
              "non-finite observation", "resume it with a lower")


def test_a_second_evaluate_is_not_told_to_choose_another_out(tmp_path, capsys):
    """While one evaluate trains the run's baseline, a second one was told to 'choose another --out',
    which evaluate does not have."""
    from metalearn.runs import RunLock
    out = tmp_path / "run"
    assert main(["train", "sinusoid", "--out", str(out), "--steps", "10", "--quiet", "--set", "train.val_tasks=5",
                 "--set", "eval.tasks=5", "--set", "train.val_every=10"]) == 0
    capsys.readouterr()
    with RunLock(out / "baseline"):                    # the first evaluate, training the baseline
        err = cli_error(capsys, ["evaluate", str(out), "--quiet"], "another 'metalearn evaluate'", "then evaluate again")
    assert "--out" not in err


def test_tune_on_a_full_disk_says_so_in_one_line(tmp_path, capsys):
    """tune on a full disk: sqlite's OperationalError, then Optuna's 'Should not reach'."""
    import sqlite3
    import subprocess

    from metalearn.tune.study import _storage_failure
    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("An exception is raised during the commit.") from inner
    except RuntimeError as outer:
        try:
            raise AssertionError("Should not reach.")
        except AssertionError as last:
            last.__context__ = outer
            assert _storage_failure(last) == "database or disk is full"
    assert _storage_failure(ValueError("x")) is None
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        cli_error(capsys, ["tune", "sinusoid", "--out", str(full / "s"), "--trials", "2", *TUNE_SMALL],
                  "storage in", "database or disk is full", "run the same command again")
    finally:
        subprocess.run(["umount", "-l", str(full)], capture_output=True)   # lazily: the storage may hold it


def test_the_time_limit_bounds_the_whole_run_final_validation_included(tmp_path, monkeypatch):
    """Case 9: train.time_limit=2 (minutes) ran 455 s: the final validation and checkpoint came
    after the limit. On a fake clock, a meta-step costs 1 s and a validation 10 s."""
    import time

    import metalearn as ml

    class Clock:
        now = 1000.0

        def __call__(self):
            return self.now

    clock = Clock()
    monkeypatch.setattr(time, "perf_counter", clock)

    class Tick:
        def on_step(self, trainer, step, loss):
            clock.now += 1.0

    algo = ml.MAML(ml.models.mlp(1, [8], 1), inner_lr=0.01)
    trainer = ml.Trainer(algo, ml.tasks.SinusoidTasks(shots=5), tmp_path / "run", steps=1000, meta_batch=2,
                         val_every=5, val_tasks=4, log_every=5, ckpt_every=5, progress=False, time_limit=0.5,
                         callbacks=[Tick()])
    validate = trainer._validate

    def slow_validation():
        clock.now += 10.0
        return validate()

    monkeypatch.setattr(trainer, "_validate", slow_validation)
    result = trainer.run()
    spent = clock.now - trainer.started
    assert result.time_limited and spent <= 30.0, spent     # the final validation fits within the limit
    assert spent >= 30.0 - 1.0 - 10.0, spent                 # and the run did not stop much earlier
    rows = ml.runs.Run(tmp_path / "run").read_metrics()
    assert rows[-1]["step"] == result.step and "val_loss" in rows[-1]


class _Bar:
    """A stand-in for a tqdm bar that records its updates."""

    def __init__(self):
        self.n, self.updates = 0.0, []

    def update(self, k):
        self.n += k
        self.updates.append(k)


@pytest.mark.parametrize("engine", ["vmap", "loop"])
def test_scoring_shows_progress_by_inner_step_and_computes_the_same_curve(engine):
    """Case 8: evaluate and the final validation scored for minutes with nothing shown. The bar
    moves as the curve's inner steps are done (not only when a call ends) and what is scored is
    the same curve, value for value, as without a bar."""
    import torch

    import metalearn as ml
    from metalearn._util.progress import counted
    torch.manual_seed(0)
    algo = ml.MAML(ml.models.mlp(1, [8], 1), inner_lr=0.01, engine=engine)
    batch = ml.tasks.SinusoidTasks(shots=5).sample(6, torch.Generator().manual_seed(1))
    bar = _Bar()
    with_bar = counted(lambda: algo.adaptation_curve(batch, 3), batch.num_tasks, bar)
    assert torch.equal(with_bar, algo.adaptation_curve(batch, 3))
    assert bar.n == pytest.approx(6) and len(bar.updates) >= 4     # a point of the curve at a time
    assert all(u > 0 for u in bar.updates)


def test_environment_curves_report_each_step_of_collection():
    """An RL evaluation collects episodes at every inner step: its bar moves each step."""
    import torch

    import metalearn as ml
    from metalearn._util.progress import counted
    from metalearn.config import apply_overrides, load_preset
    from metalearn.training.build import build_algorithm, build_tasks
    cfg = apply_overrides(load_preset("rl-nav2d"), ["task.horizon=5", "task.shots=2", "model.hidden=[8]"])
    family = build_tasks(cfg, "test")
    algo = build_algorithm(cfg, family)
    batch = family.sample(3, torch.Generator().manual_seed(2))
    bar = _Bar()
    counted(lambda: algo.adaptation_curve(batch, 2, metric="return"), batch.num_tasks, bar)
    assert bar.n == pytest.approx(3) and len(bar.updates) == 3
    assert isinstance(algo, ml.algorithms.Algorithm)


def test_evaluate_and_validation_draw_their_bars(tmp_path, capsys):
    """The bars are drawn (names and task counts) unless --quiet, and --quiet draws nothing."""
    sets = ["--set", "train.val_tasks=6", "--set", "train.meta_batch=2", "--set", "model.hidden=[8]",
            "--set", "train.val_every=2"]
    assert main(["train", "sinusoid", "--out", str(tmp_path / "r"), "--steps", "2", *sets]) == 0
    assert "validation" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "r"), "--tasks", "7", "--no-baseline"]) == 0
    err = capsys.readouterr().err
    assert "scoring maml" in err and "0/7 [" in err
    assert main(["evaluate", str(tmp_path / "r"), "--tasks", "7", "--no-baseline", "--quiet"]) == 0
    assert "scoring" not in capsys.readouterr().err


def test_an_image_folder_run_keeps_its_class_split(tmp_path, capsys, monkeypatch):
    """Case 1's rule for every family that fits something to its data: an image folder without
    train/ and test/ subfolders is split 70/10/20 over its classes. Adding class folders after
    training re-drew that split over the grown list (test classes moved into meta-training), and a
    relative task.data_dir read whatever folder was there. The run keeps the folder and the split."""
    from test_bad_input_data import image_folder

    from metalearn.runs import Run
    from metalearn.training.build import build_tasks
    data = image_folder(tmp_path / "data", [f"c{i:02d}" for i in range(20)], 3)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "omniglot-5w1s", "--out", "run", "--steps", "1", "--quiet",
                 "--set", "task.family=image_folder", "--set", "task.data_dir=data", "--set", "task.ways=2",
                 "--set", "task.shots=1", "--set", "task.queries=1", "--set", "model.width=8",
                 "--set", "train.val_tasks=2", "--set", "train.meta_batch=1"]) == 0
    fitted = json.loads((tmp_path / "run" / "fitted.json").read_text())
    assert fitted["root"] == str(data.resolve()) and fitted["layout"] == "derived split"
    split = fitted["split"]
    assert sorted(split["train"] + split["validation"] + split["test"]) == [f"c{i:02d}" for i in range(20)]
    assert len(split["test"]) == 4 and not set(split["test"]) & set(split["train"])
    image_folder(data, [f"c{i:02d}" for i in range(20, 32)], 3, seed=1)      # 12 classes added
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)                                            # no data/ here
    cfg = Run(tmp_path / "run").load_config()
    for name in ("train", "test"):
        assert build_tasks(cfg, name).dataset.class_names == split[name]
    assert main(["evaluate", str(tmp_path / "run"), "--tasks", "2", "--no-baseline", "--quiet"]) == 0
    capsys.readouterr()
    shutil.rmtree(data / split["test"][0])
    cli_error(capsys, ["evaluate", str(tmp_path / "run"), "--tasks", "2", "--no-baseline", "--quiet"],
              f"1 of the 4 test classes this run was trained with are missing from {data.resolve()}",
              f"'{split['test'][0]}'")
