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
