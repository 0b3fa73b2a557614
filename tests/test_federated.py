"""Federated meta-learning: alphabet clients, the client split, each strategy's local update (the
registered algorithm's own code), held-out client scoring, and a Flower simulation end to end."""
import json
import os

import pytest
import torch

from metalearn.cli.main import main
from metalearn.config import apply_overrides, load_preset, validate
from metalearn.errors import ConfigError
from metalearn.federated import FedEvaluation, client_accuracy, client_algorithm, compare_with, local_update, shared_keys
from metalearn.tasks.clients import alphabet_clients, split_clients

DATA = os.environ.get("METALEARN_DATA_DIR")
needs_omniglot = pytest.mark.skipif(not DATA, reason="needs METALEARN_DATA_DIR with Omniglot")


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
    acc = client_accuracy(algo, [client], 3, 2, seed=0)
    assert acc.shape == (1, 3) and ((acc >= 0) & (acc <= 100)).all()
    # the same client and seed give the same episodes: the same numbers
    torch.testing.assert_close(client_accuracy(algo, [client], 3, 2, seed=0), acc)


def test_rounds_to_reach_an_accuracy():
    from metalearn.federated import rounds_to_reach
    rows = [{"step": 0, "val_acc": 20.0, "bytes": 0}, {"step": 10, "val_acc": 50.0, "bytes": 100},
            {"step": 20, "val_acc": 70.0, "bytes": 200}]
    assert rounds_to_reach(rows, 45.0) == (10, 100) and rounds_to_reach(rows, 70.0) == (20, 200)
    assert rounds_to_reach(rows, 80.0) is None


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
