"""Grouped tables: reading and checking a user's file, the group split, the encoder, the row
protocol of tasks, the per-group evaluator, ``metalearn adapt`` on rows, and bad input."""
import json
import warnings

import numpy as np
import pytest
import torch
from cli_helpers import cli_error

from metalearn.cli.main import main
from metalearn.config import Config, apply_overrides
from metalearn.data.tables import TableEncoder, TableSpec, read_table, split_groups
from metalearn.errors import DataError
from metalearn.models.ridge import fit_ridge, predict_ridge
from metalearn.tasks.tables.grouped import TableTasks

pd = pytest.importorskip("pandas")


def make_table(path, groups=30, rows=24, seed=0, classification=False):
    """Each group a linear function of x1, x2 with its own slope and offset, a colour column and a
    site column; ``t`` orders the rows."""
    rng = np.random.default_rng(seed)
    out = []
    for g in range(groups):
        a, b = rng.normal(size=2)
        for i in range(rows):
            x1, x2 = rng.normal(size=2)
            colour = rng.choice(["red", "green", "blue"])
            y = a * x1 + b + 0.5 * (colour == "red") + 0.05 * rng.normal()
            out.append({"patient": f"p{g:02d}", "t": i, "x1": x1, "x2": x2, "colour": colour,
                        "site": "north" if g % 3 else "south",
                        "y": ("high" if y > b else "low") if classification else y})
    df = pd.DataFrame(out)
    df.to_csv(path, index=False)
    return df


def table_cfg(path, *extra):
    return apply_overrides(Config(), ["task.family=table", f"task.data={path}", "task.group=patient",
                                      "task.target=y", *extra])


@pytest.fixture
def table_csv(tmp_path):
    path = tmp_path / "groups.csv"
    make_table(path)
    return path


# ---- splits and encoding -----------------------------------------------------------------------

def test_split_is_disjoint_exact_and_stratified():
    names = [f"g{i:02d}" for i in range(30)]
    strata = ["a"] * 10 + ["b"] * 10 + ["c"] * 10
    parts = split_groups(names, (16, 4, 10), seed=3, strata=strata)
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [16, 4, 10]
    assert sorted(sum(parts.values(), [])) == names   # every group once
    for k, lo, hi in (("train", 5, 6), ("validation", 1, 2), ("test", 3, 4)):
        counts = [sum(strata[names.index(n)] == s for n in parts[k]) for s in "abc"]
        assert all(lo <= c <= hi for c in counts), (k, counts)
    assert split_groups(names, (16, 4, 10), seed=3, strata=strata) == parts
    assert split_groups(names, (16, 4, 10), seed=4, strata=strata) != parts


def test_encoder_uses_meta_training_groups_only(tmp_path):
    df = make_table(tmp_path / "t.csv")
    spec = TableSpec("patient", "y", time="t")
    train = df[df.patient < "p10"]
    enc = TableEncoder.fit(train, spec)
    assert enc.numeric["x1"][0] == pytest.approx(train.x1.mean())
    assert enc.target_stats[0] == pytest.approx(train.y.mean())
    # text columns are one-hot with a bucket for levels unseen in meta-training
    assert enc.categorical["colour"] == ["blue", "green", "red"]
    new = train.head(2).copy()
    new["colour"] = ["purple", "red"]
    x = enc.transform_x(new)
    names = enc.feature_names()
    assert x[0, names.index("colour=<unknown>")] == 1 and x[1, names.index("colour=red")] == 1
    # standardised with the training statistics: a shifted row moves by shift / std
    shifted = train.head(1).copy()
    shifted["x1"] += 3.0
    delta = enc.transform_x(shifted)[0, names.index("x1")] - enc.transform_x(train.head(1))[0, names.index("x1")]
    assert float(delta) == pytest.approx(3.0 / enc.numeric["x1"][1], rel=1e-5)


def test_family_rows_follow_time_and_support_until(table_csv):
    cfg = table_cfg(table_csv, "task.time=t", "task.shots=5", "task.queries=6")
    fam = TableTasks.from_config(cfg.task, "train", 5, 6)
    gen = torch.Generator().manual_seed(0)
    for g in fam.groups[:10]:
        s, q = fam.sample_rows(g, 5, 6, gen)
        assert len(s) == 5 and len(q) == 6
        assert g.time[s].max() < g.time[q].min()          # the query never precedes the support
    test = TableTasks.from_config(cfg.task, "test", 5, 6)
    s, q = test.split_for_eval(test.groups[0], 5, gen)
    assert s.tolist() == list(range(5)) and q.tolist() == list(range(5, len(test.groups[0])))
    # a fixed boundary: support strictly before it, query from it on
    fam = TableTasks.from_config(table_cfg(table_csv, "task.time=t", "task.support_until=10").task, "train", 4, 6)
    for g in fam.groups[:5]:
        s, q = fam.sample_rows(g, 4, 6, gen)
        assert (g.time[s] < 10).all() and (g.time[q] >= 10).all()
        s, q = fam.split_for_eval(g, 4, gen)
        assert (g.time[q] >= 10).all() and len(q) == int((g.time >= 10).sum())


def test_splits_hold_disjoint_groups(table_csv):
    cfg = table_cfg(table_csv, "task.stratify=site")
    names = {s: {g.name for g in TableTasks.from_config(cfg.task, s, 5, 5).all_groups}
             for s in ("train", "validation", "test")}
    assert not names["train"] & names["test"] and not names["train"] & names["validation"]
    assert len(names["train"] | names["validation"] | names["test"]) == 30


def test_small_groups_are_named_and_skipped(tmp_path):
    df = make_table(tmp_path / "t.csv")
    df = df[~((df.patient == "p01") & (df.t >= 6))]   # p01 keeps 6 rows
    df.to_csv(tmp_path / "t.csv", index=False)
    cfg = table_cfg(tmp_path / "t.csv", "task.split=[1,0,0]")
    with pytest.warns(UserWarning, match=r"'p01' \(6 rows\).*skipped"):
        fam = TableTasks.from_config(cfg.task, "train", 5, 5)
    assert "p01" not in {g.name for g in fam.groups} and len(fam.groups) == 29
    with pytest.raises(DataError, match="none is left"):
        TableTasks.from_config(cfg.task, "train", 20, 20)


def test_classification_target_is_detected(tmp_path):
    make_table(tmp_path / "c.csv", classification=True)
    fam = TableTasks.from_config(table_cfg(tmp_path / "c.csv").task, "train", 5, 5)
    assert fam.kind == "classification" and fam.output_dim == 2 and fam.loss == "cross_entropy"
    batch = fam.sample(3, torch.Generator().manual_seed(0))
    assert batch.support_y.dtype == torch.int64 and batch.support_y.shape == (3, 5)


def test_parquet_reads_like_csv(tmp_path):
    pytest.importorskip("pyarrow")
    df = make_table(tmp_path / "t.csv")
    df.to_parquet(tmp_path / "t.parquet")
    a = TableTasks.from_config(table_cfg(tmp_path / "t.csv").task, "train", 5, 5)
    b = TableTasks.from_config(table_cfg(tmp_path / "t.parquet").task, "train", 5, 5)
    assert torch.allclose(a.groups[0].x, b.groups[0].x)


# ---- ridge ---------------------------------------------------------------------------------------

def test_ridge_matches_least_squares_and_shrinks_to_its_prior():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.3
    w = fit_ridge(x, y, 1e-9)
    assert torch.allclose(w, torch.tensor([1.0, -2.0, 0.5, 0.3], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(predict_ridge(w, x), y, atol=1e-6)
    prior = torch.tensor([5.0, 5.0, 5.0, 0.0], dtype=torch.float64)
    far = fit_ridge(x, y, 1e9, prior)
    assert torch.allclose(far[:3], prior[:3], atol=1e-3)


# ---- CLI: train, evaluate, adapt -------------------------------------------------------------

@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    make_table(root / "groups.csv")
    out = root / "run"
    assert main(["train", "table", "--out", str(out), "--quiet", "--set", f"task.data={root / 'groups.csv'}",
                 "--set", "task.group=patient", "--set", "task.target=y", "--set", "task.time=t",
                 "--set", "task.shots=8", "--set", "task.queries=8",
                 "--set", "train.steps=60", "--set", "train.val_every=30", "--set", "train.ckpt_every=30",
                 "--set", "eval.support_sizes=[4,8]", "--set", "eval.steps=[1,5]"]) == 0
    return root, out


def test_evaluate_scores_every_method_on_every_group(table_run, capsys):
    root, out = table_run
    assert main(["evaluate", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    res = json.loads((out / "eval" / "groups.json").read_text())
    assert res["sizes"] == [4, 8] and len(res["groups"]) == 4   # 15% of 30 groups
    for method in ("ridge, pooled", "ridge, own data", "ridge, pooled then adapted", "MLP, pooled",
                   "MLP, own data", "MLP, pooled then fine-tuned", "maml, before adaptation", "maml, after 5 steps"):
        assert len(res["scores"][method]["4"]) == 4, method
    assert "difference to the best baseline" in text and "against the support size" in text
    # the pooled ridge's score recomputed by hand on the first test group with its own penalty
    cfg = table_cfg(root / "groups.csv", "task.time=t")
    test = TableTasks.from_config(cfg.task, "test", 4, 4)
    train_x = torch.cat([g.x for g in test.train_groups])
    train_y = torch.cat([g.y for g in test.train_groups])
    w = fit_ridge(train_x, train_y, res["chosen"]["4"]["pooled ridge penalty"])
    g = test.all_groups[0]
    q = torch.arange(4, len(g))
    pred = predict_ridge(w, g.x[q])
    want = float((pred - g.y[q, 0].double()).pow(2).mean().sqrt()) * test.metric.scale
    assert res["scores"]["ridge, pooled"]["4"][0] == pytest.approx(want, rel=1e-4)
    # adaptation helps the meta-learned model on groups whose slope and offset differ
    before = np.mean(res["scores"]["maml, before adaptation"]["8"])
    after = np.mean(res["scores"]["maml, after 5 steps"]["8"])
    assert after < before


def test_adapt_predicts_query_rows(table_run, tmp_path, capsys):
    root, out = table_run
    df = pd.read_csv(root / "groups.csv")
    g = df[df.patient == "p00"]
    g.iloc[:8].to_csv(tmp_path / "support.csv", index=False)
    g.iloc[8:].drop(columns=["y"]).to_csv(tmp_path / "query.csv", index=False)
    assert main(["adapt", str(out), "--support", str(tmp_path / "support.csv"), "--query",
                 str(tmp_path / "query.csv"), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == len(g) - 8 and pred["predicted_y"].notna().all()
    assert list(pred["t"]) == list(g["t"].iloc[8:])
    # a support file without the target, a query file missing a feature: one line, exit 2
    g.iloc[:8].drop(columns=["y"]).to_csv(tmp_path / "no_target.csv", index=False)
    cli_error(capsys, ["adapt", str(out), "--support", str(tmp_path / "no_target.csv"), "--query",
                       str(tmp_path / "query.csv")], "no target column 'y'")
    g.iloc[8:].drop(columns=["y", "x2"]).to_csv(tmp_path / "no_x2.csv", index=False)
    cli_error(capsys, ["adapt", str(out), "--support", str(tmp_path / "support.csv"), "--query",
                       str(tmp_path / "no_x2.csv")], "no column 'x2'")


# ---- bad input --------------------------------------------------------------------------------

def _train(tmp_path, path, *sets):
    argv = ["train", "table", "--out", str(tmp_path / "run"), "--quiet", "--set", f"task.data={path}",
            "--set", "task.group=patient", "--set", "task.target=y", "--set", "train.steps=2",
            "--set", "task.shots=5", "--set", "task.queries=5"]
    for s in sets:
        argv += ["--set", s]
    return argv


def test_bad_tables_get_one_line(tmp_path, capsys):
    df = make_table(tmp_path / "ok.csv")
    cli_error(capsys, _train(tmp_path, tmp_path / "ok.csv", "task.group=hospital"),
              "task.group='hospital' is not a column", "patient")
    bad = df.copy().astype({"x1": object})
    bad.loc[3, "x1"] = "1.2.3"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    cli_error(capsys, _train(tmp_path, tmp_path / "bad.csv", "task.features=[x1,x2]"), "'x1'", "'1.2.3'")
    cli_error(capsys, _train(tmp_path, tmp_path / "bad.csv"), "'x1'", "'1.2.3'")   # also when found by itself
    nan = df.copy()
    nan.loc[5, "y"] = np.nan
    nan.to_csv(tmp_path / "nan.csv", index=False)
    cli_error(capsys, _train(tmp_path, tmp_path / "nan.csv"), "target 'y' is missing in 1 rows", "drop")
    const = df.copy()
    const["y"] = 1.0
    const.to_csv(tmp_path / "const.csv", index=False)
    cli_error(capsys, _train(tmp_path, tmp_path / "const.csv"), "constant")
    (tmp_path / "table.xlsx").write_bytes(b"PK\x03\x04")
    cli_error(capsys, _train(tmp_path, tmp_path / "table.xlsx"), "neither CSV nor Parquet")
    (tmp_path / "fake.parquet").write_text("a,b\n1,2\n")
    cli_error(capsys, _train(tmp_path, tmp_path / "fake.parquet"), "could not be read as Parquet")
    cli_error(capsys, _train(tmp_path, tmp_path / "missing.csv"), "does not exist")
    assert not (tmp_path / "run").exists()


def test_user_table_warns_about_filled_values(tmp_path):
    df = make_table(tmp_path / "t.csv")
    df.loc[2, "x2"] = np.nan
    df.to_csv(tmp_path / "t.csv", index=False)
    cfg = table_cfg(tmp_path / "t.csv", "task.split=[1,0,0]")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TableTasks.from_config(cfg.task, "train", 5, 5)
    assert any("1 missing values in column 'x2'" in str(w.message) for w in caught)


def test_read_table_names_the_extension(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="neither CSV nor Parquet"):
        read_table(tmp_path / "x.json")
