"""Federated meta-learning: alphabet clients, the client split, each strategy's local update (the
registered algorithm's own code), held-out client scoring, and a Flower simulation end to end."""
import json

import pytest
import torch
from shared_data import HAS_OMNIGLOT, SHARED_DATA, needs_omniglot

from metalearn.cli.main import main
from metalearn.config import apply_overrides, load_preset, validate
from metalearn.errors import ConfigError
from metalearn.federated.fedmeta import (
    FedEvaluation,
    client_algorithm,
    client_scores,
    compare_with,
    federated_clients,
    local_update,
    shared_keys,
)
from metalearn.tasks.federated.clients import alphabet_clients, split_clients

DATA = str(SHARED_DATA) if HAS_OMNIGLOT else None


def config(strategy="fedmeta", *extra):
    return validate(apply_overrides(load_preset("fed-omniglot-5w1s"), [
        f"fed.strategy={strategy}", "model.width=8", "fed.local_steps=2", "fed.local_batch=2", *extra]))


def test_client_split_is_seeded_disjoint_and_complete():
    a, b = split_clients(50, 0), split_clients(50, 0)
    assert a == b and len(a["train"]) == 40 and len(a["validation"]) == 5 and len(a["test"]) == 5
    assert sorted(a["train"] + a["validation"] + a["test"]) == list(range(50))
    assert split_clients(50, 1)["test"] != a["test"]
    with pytest.raises(ConfigError, match="three non-negative fractions summing to 1"):
        split_clients(50, 0, (0.5, 0.2, 0.2))


@needs_omniglot
def test_alphabet_clients_hold_their_own_characters():
    clients = alphabet_clients(5, 1, 1, data_dir=DATA)
    assert len(clients) == 50
    sizes = [c.tasks.num_classes for c in clients]
    assert min(sizes) >= 14 and max(sizes) <= 55 and sum(sizes) == 1623
    assert all(n.split("/")[0] == c.name for c in clients for n in c.tasks.dataset.class_names)


@needs_omniglot
@pytest.mark.parametrize("strategy", ["fedmeta", "perfedavg", "fedavg_ft"])
def test_each_strategy_runs_its_local_update_with_the_registered_algorithm(strategy):
    cfg = config(strategy)
    client = alphabet_clients(5, 1, 1, data_dir=DATA)[0]
    algo = client_algorithm(cfg, client)
    assert algo.name == {"fedmeta": "maml", "perfedavg": "maml", "fedavg_ft": "transfer"}[strategy]
    if strategy == "perfedavg":
        assert algo.mode == "first_order"
    keys = shared_keys(cfg, algo)
    # FedAvg + fine-tuning keeps the client's head at home; the others send everything
    if strategy == "fedavg_ft":
        assert "classifier.weight" in algo.state_dict() and "classifier.weight" not in keys
        assert keys and all(k.startswith("model.") for k in keys)
    else:
        assert set(keys) == set(algo.state_dict())
    before = {k: v.clone() for k, v in algo.state_dict().items()}
    loss = local_update(cfg, algo, client, torch.Generator().manual_seed(0))
    assert loss > 0 and any(not torch.equal(before[k], v) for k, v in algo.state_dict().items())
    acc = client_scores(algo, [client], 3, 2, seed=0)
    assert acc.shape == (1, 3) and ((acc >= 0) & (acc <= 100)).all()
    # the same client and seed give the same episodes: the same numbers
    torch.testing.assert_close(client_scores(algo, [client], 3, 2, seed=0), acc)


def test_rounds_to_reach_an_accuracy():
    from metalearn.federated.fedmeta import rounds_to_reach
    rows = [{"step": 0, "val_acc": 20.0, "bytes": 0}, {"step": 10, "val_acc": 50.0, "bytes": 100},
            {"step": 20, "val_acc": 70.0, "bytes": 200}]
    assert rounds_to_reach(rows, 45.0) == (10, 100) and rounds_to_reach(rows, 70.0) == (20, 200)
    assert rounds_to_reach(rows, 80.0) is None
    errors = [{"step": 0, "val_rmse": 9.0, "bytes": 0}, {"step": 10, "val_rmse": 4.0, "bytes": 100}]
    assert rounds_to_reach(errors, 5.0, higher_is_better=False) == (10, 100)
    assert rounds_to_reach(errors, 3.0, higher_is_better=False) is None


def test_the_evaluation_table_reports_the_spread_and_paired_differences(tmp_path):
    a = FedEvaluation("fedmeta", ["x", "y", "z"], [0, 1], [[20.0, 60.0], [20.0, 40.0], [20.0, 50.0]], 10, 1000)
    b = FedEvaluation("fedavg_ft", ["x", "y", "z"], [0, 1], [[20.0, 50.0], [20.0, 45.0], [20.0, 40.0]], 10, 1000)
    a.paired["fedmeta - fedavg_ft"] = d = compare_with(a, b)
    assert d["mean"][1] == pytest.approx(5.0) and d["wins"][1] == 2 and d["losses"][1] == 1
    assert a.summary()[1]["mean"] == pytest.approx(50.0) and a.summary()[1]["p10"] == pytest.approx(42.0)
    text = a.table()
    assert "10th percentile" in text and "+5.00" in text
    c = FedEvaluation("x", ["q", "y", "z"], [0, 1], b.per_client, 10, 1)
    with pytest.raises(ConfigError, match="held out different clients"):
        compare_with(a, c)


def test_an_error_metric_is_paired_and_summarised_lower_is_better():
    kw = {"metric": "RMSE (ng/mL)", "higher_is_better": False}
    a = FedEvaluation("fedmeta", ["x", "y", "z"], [0, 1], [[9.0, 3.0], [9.0, 5.0], [9.0, 4.0]], 10, 1000, **kw)
    b = FedEvaluation("fedavg_ft", ["x", "y", "z"], [0, 1], [[9.0, 4.0], [9.0, 4.5], [9.0, 6.0]], 10, 1000, **kw)
    d = compare_with(a, b)
    # lower wins: x and z are better under FedMeta, y is worse
    assert d["mean"][1] == pytest.approx(-5.0 / 6) and d["wins"][1] == 2 and d["losses"][1] == 1
    # the worst tenth of clients of an error is its 90th percentile
    assert a.summary()[1]["worst_decile"] == pytest.approx(4.8) and "90th percentile" in a.table()
    assert "RMSE (ng/mL) on 3 held-out clients (lower is better" in a.table()
    with pytest.raises(ConfigError, match="scored differently"):
        compare_with(a, FedEvaluation("x", ["x", "y", "z"], [0, 1], b.per_client, 10, 1))
    # a baseline with a step count of its own (own data: 100 Adam steps) pairs it with the other's last column
    own = FedEvaluation("own_data", ["x", "y", "z"], [0, 1, 100], [[9.0, 8.0, 5.0], [9.0, 8.0, 7.0],
                                                                    [9.0, 8.0, 4.0]], 10, 0, **kw)
    d = compare_with(own, a)
    assert d["against_steps"] == [0, 1, 1] and d["mean"][2] == pytest.approx((2.0 + 2.0 + 0.0) / 3)
    own.paired["own_data - fedmeta"] = d
    assert "vs its 1 step" in own.table() and "vs its 1 steps" not in own.table()


# ---- grouped-table clients ----------------------------------------------------------------------


def table_config(path, strategy="fedmeta", *extra):
    return validate(apply_overrides(load_preset("fed-remifentanil"), [
        "task.family=table", f"task.data={path}", "task.group=patient", "task.target=y", "task.time=t",
        "task.shots=4", "task.queries=8", "model.hidden=[16]", f"fed.strategy={strategy}", "fed.local_steps=2",
        "fed.local_batch=2", "eval.steps=[1, 3]", *extra]))


@pytest.fixture
def table_csv(tmp_path):
    pytest.importorskip("pandas")
    from test_tables import make_table
    path = tmp_path / "groups.csv"
    make_table(path, groups=20, rows=16)
    return path


def test_the_groups_of_a_table_are_its_clients(table_csv):
    import pandas as pd
    cfg = table_config(table_csv)
    parts = federated_clients(cfg)
    names = {part: [c.name for c in clients] for part, clients in parts.items()}
    # the table's own split of its 20 groups (task.split_seed): disjoint, complete
    assert sorted(sum(names.values(), [])) == sorted(pd.read_csv(table_csv).patient.unique())
    assert len(set(names["train"]) & set(names["test"])) == 0 and len(names["train"]) >= 10
    client = parts["train"][0]
    group = client.tasks.groups[0]
    assert client.size == len(group) == 16 and client.tasks.groups == [group]
    # its training tasks come from its own rows only
    batch = client.tasks.sample(3, torch.Generator().manual_seed(0))
    own = {tuple(r) for r in group.x.tolist()}
    assert all(tuple(r) in own for r in batch.support_x.flatten(0, 1).tolist() + batch.query_x.flatten(0, 1).tolist())
    # a held-out client adapts on its first 4 rows and is scored on all 12 later ones (one draw: nothing random)
    test = parts["test"][0]
    ep = test.held_out_episodes(5, torch.Generator().manual_seed(0))
    g = test.tasks.groups[0]
    assert ep.support_x.shape[:2] == (1, 4) and ep.query_x.shape[:2] == (1, 12)
    torch.testing.assert_close(ep.support_x[0], g.x[:4])
    torch.testing.assert_close(ep.query_y[0], g.y[4:])


def test_fedavg_on_a_table_averages_the_pooled_model(table_csv):
    cfg = table_config(table_csv, "fedavg_ft")
    client = federated_clients(cfg)["train"][0]
    algo = client_algorithm(cfg, client)
    assert algo.name == "pretrain" and set(shared_keys(cfg, algo)) == set(algo.state_dict())
    before = {k: v.clone() for k, v in algo.state_dict().items()}
    assert local_update(cfg, algo, client, torch.Generator().manual_seed(0)) > 0
    assert any(not torch.equal(before[k], v) for k, v in algo.state_dict().items())
    rmse = client_scores(algo, federated_clients(cfg)["test"], 1, 3, seed=0)
    assert rmse.shape == (len(federated_clients(cfg)["test"]), 4) and (rmse > 0).all()


def test_federate_a_table_on_flowers_simulation_engine(table_csv, tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "fed"
    sets = ["--set", "task.family=table", "--set", f"task.data={table_csv}", "--set", "task.group=patient",
            "--set", "task.target=y", "--set", "task.time=t", "--set", "task.shots=4", "--set", "task.queries=8",
            "--set", "model.hidden=[16]", "--set", "fed.local_steps=2", "--set", "fed.eval_every=1",
            "--set", "fed.local_batch=2", "--set", "eval.steps=[1,3]"]
    assert main(["federate", "fed-remifentanil", "--out", str(out), "--rounds", "2", "--quiet", *sets]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2] and all(r["val_rmse"] > 0 for r in rows)
    result = json.loads((out / "eval/federated.json").read_text())
    assert result["metric"].startswith("RMSE") and result["higher_is_better"] is False
    assert result["steps"] == [0, 1, 3] and len(result["per_client"]) == len(result["clients"]) > 0
    # the reference trained on each held-out client's rows alone, paired over the same clients
    assert main(["federate", "fed-remifentanil", "--out", str(tmp_path / "own"), "--strategy", "own_data",
                 "--compare", str(out), "--quiet", *sets]) == 0
    own = json.loads((tmp_path / "own/eval/federated.json").read_text())
    assert own["clients"] == result["clients"] and "own_data - fedmeta" in own["paired"]
    assert "lower is better" in capsys.readouterr().out
    # a second run with the same seed: the same clients each round, averaged in the same order
    assert main(["federate", "fed-remifentanil", "--out", str(tmp_path / "again"), "--rounds", "2", "--quiet",
                 *sets]) == 0
    first, again = (torch.load(p / "checkpoints/last.pt", weights_only=True)["model"] for p in (out, tmp_path / "again"))
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)


class _FakeGrid:
    """Nodes with random ids whose query replies name their partition ids, in a shuffled order."""

    def __init__(self, pids, seed):
        import random as _random
        rng = _random.Random(seed)
        self.nodes = {rng.getrandbits(63): pid for pid in pids}

    def get_node_ids(self):
        return list(self.nodes)

    def send_and_receive(self, asks):
        from types import SimpleNamespace

        from flwr.app import MetricRecord, RecordDict
        replies = [SimpleNamespace(has_error=lambda: False, metadata=SimpleNamespace(src_node_id=m.metadata.dst_node_id),
                                   content=RecordDict({"metrics": MetricRecord({"partition-id": self.nodes[
                                       m.metadata.dst_node_id]})})) for m in asks]
        return replies[::-1]


def test_client_sampling_and_averaging_order_do_not_depend_on_node_ids():
    pytest.importorskip("flwr")
    from types import SimpleNamespace

    from metalearn.federated.flower_apps import _Partitions

    chosen, orders = [], []
    for node_seed in (1, 2, 3):
        grid = _FakeGrid(range(12), node_seed)
        parts = _Partitions(grid)
        rounds = [[grid.nodes[n] for n in parts.sample(0.25, 1, seed=0, server_round=r)] for r in (1, 2, 3)]
        chosen.append(rounds)
        replies = [SimpleNamespace(metadata=SimpleNamespace(src_node_id=n)) for n in grid.get_node_ids()]
        orders.append([grid.nodes[m.metadata.src_node_id] for m in parts.order(replies)])
    assert chosen[0] == chosen[1] == chosen[2] and all(len(r) == 3 for r in chosen[0])
    assert chosen[0][0] != chosen[0][1]                  # a new draw each round
    assert orders[0] == orders[1] == orders[2] == list(range(12))
    grid = _FakeGrid(range(12), 1)
    assert _Partitions(grid).sample(0.25, 1, seed=1, server_round=1) != _Partitions(grid).sample(0.25, 1, seed=0,
                                                                                                server_round=1)


@needs_omniglot
def test_federate_runs_on_flowers_simulation_engine(tmp_path, capsys):
    pytest.importorskip("ray")
    import signal
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    out = tmp_path / "fed"
    argv = ["federate", "fed-omniglot-5w1s", "--out", str(out), "--rounds", "2", "--quiet", "--set", "model.width=8",
            "--set", "fed.local_steps=1", "--set", "fed.eval_every=1", "--set", "fed.eval_episodes=2",
            "--set", "fed.local_batch=1", "--set", "eval.steps=[1]"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    # 8 of the 40 training clients per round, the model down and back: bytes grow linearly with rounds
    assert rows[2]["bytes"] == 2 * rows[1]["bytes"] > 0
    result = json.loads((out / "eval/federated.json").read_text())
    assert len(result["clients"]) == 5 and result["steps"] == [0, 1] and len(result["per_client"][0]) == 2
    assert "held-out clients" in capsys.readouterr().out
    assert (out / "report/rounds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Ray's signal handlers do not outlive the run: Ctrl-C still stops a later training cleanly
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


@needs_omniglot
def test_the_references_score_the_same_held_out_clients_and_pair_with_a_run(tmp_path, capsys):
    common = ["--rounds", "1", "--quiet", "--set", "model.width=8", "--set", "fed.local_steps=1", "--set",
              "fed.eval_episodes=2", "--set", "fed.local_batch=1", "--set", "eval.steps=[1]"]
    assert main(["federate", "fed-omniglot-5w1s", "--out", str(tmp_path / "own"), "--strategy", "own_data",
                 *common]) == 0
    assert main(["federate", "fed-omniglot-5w1s", "--out", str(tmp_path / "central"), "--strategy", "central",
                 "--compare", str(tmp_path / "own"), *common]) == 0
    own = json.loads((tmp_path / "own/eval/federated.json").read_text())
    central = json.loads((tmp_path / "central/eval/federated.json").read_text())
    assert own["clients"] == central["clients"] and own["bytes_total"] == 0
    diff = central["paired"]["central - own_data"]
    a, b = torch.tensor(central["per_client"]), torch.tensor(own["per_client"])
    assert diff["mean"][1] == pytest.approx(float((a[:, 1] - b[:, 1]).mean()), abs=1e-6)
    assert "central - own_data" in capsys.readouterr().out


def test_bad_federated_input_is_one_line(capsys, tmp_path):
    from cli_helpers import cli_error
    cli_error(capsys, ["federate", "fed-omniglot-5w1s", "--out", str(tmp_path / "r"), "--strategy", "fedprox"],
              "unknown fed.strategy 'fedprox'; choose one of: fedmeta, perfedavg, fedavg_ft, central, own_data")
    cli_error(capsys, ["federate", "sinusoid", "--out", str(tmp_path / "r")], "federated clients are Omniglot alphabets")
    cli_error(capsys, ["federate", "fed-omniglot-5w1s", "--out", str(tmp_path / "r"), "--set", "fed.fraction=0"],
              "fed.fraction must be in (0, 1]")


def test_table_clients_with_too_few_rows_are_one_line(capsys, tmp_path, table_csv):
    from cli_helpers import cli_error
    base = ["federate", "fed-remifentanil", "--out", str(tmp_path / "r"), "--set", "task.family=table", "--set",
            f"task.data={table_csv}", "--set", "task.group=patient", "--set", "task.target=y", "--set", "task.time=t"]
    # 16 rows per group cannot hold 10 support and 8 query rows: no client is left
    cli_error(capsys, [*base, "--set", "task.shots=10", "--set", "task.queries=8"], "none is left",
              "fewer --set task.shots")


@pytest.mark.parametrize("central, updates, tasks", [("updates", 2 * 2 * 2, 2), ("steps", 2 * 2, 2 * 2)])
def test_the_central_reference_sees_as_many_episodes_either_way(table_csv, central, updates, tasks):
    from metalearn.federated.fedmeta import train_central
    # 2 rounds of 2 sampled clients x 2 local updates of 2 tasks: 16 tasks in all, either way
    cfg = table_config(table_csv, "central", "fed.rounds=2", f"fed.central={central}")
    clients = federated_clients(cfg)["train"]
    cfg.fed.fraction = 2.5 / len(clients)   # int(2.5) = 2 clients per round
    algo = client_algorithm(cfg, clients[0])
    seen = []
    inner = algo.meta_backward
    algo.meta_backward = lambda batch, *a, **k: (seen.append(batch.num_tasks), inner(batch, *a, **k))[1]
    assert train_central(cfg, algo, clients, torch.Generator().manual_seed(0)) == updates
    assert seen == [tasks] * updates and sum(seen) == 2 * 2 * 2 * 2
