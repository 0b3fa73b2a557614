"""A federated run deployed with ``flwr run``: a real SuperLink and three SuperNodes, each its own
process talking over loopback, run the same server and client code as the simulation."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shared_data import HAS_OMNIGLOT, SHARED_DATA, needs_omniglot

try:
    import tomllib
except ImportError:   # Python 3.10
    import tomli as tomllib

from metalearn.cli.main import main
from metalearn.config import apply_overrides, load_preset, validate
from metalearn.federated.deploy import write_app

DATA = str(SHARED_DATA) if HAS_OMNIGLOT else None
TINY = ["--set", "model.width=8", "--set", "fed.local_steps=1", "--set", "fed.eval_every=1", "--set",
        "fed.eval_episodes=2", "--set", "fed.local_batch=1", "--set", "eval.steps=[1]"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, procs: list[subprocess.Popen], seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert all(p.poll() is None for p in procs), "a Flower process exited at start-up"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"nothing listens on port {port} after {seconds} s")


def flower_command(name: str) -> str:
    exe = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(exe).exists():
        pytest.skip(f"{name} is not installed (pip install 'metalearn-torch[federated]')")
    return exe


@pytest.fixture
def federation(tmp_path):
    """A SuperLink on a free loopback port and three SuperNodes, partitions 0, 1 and 2."""
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr-home")}
    link = free_port()
    procs: list[subprocess.Popen] = []
    logs = []

    def start(cmd: list[str], name: str) -> None:
        log = open(tmp_path / f"{name}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))

    try:
        start([flower_command("flower-superlink"), "--insecure", "--port", str(link),
               "--disable-runtime-dependency-installation"], "superlink")
        wait_for(link, procs)
        for i in range(3):
            port = free_port()
            start([flower_command("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link}",
                   "--port", str(port), "--node-config", f"partition-id={i}"], f"supernode{i}")
            wait_for(port, procs)
        yield f"127.0.0.1:{link}"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


@needs_omniglot
def test_a_run_deployed_on_a_superlink_and_three_supernodes(federation, tmp_path, capsys):
    out = tmp_path / "fed"
    argv = ["federate", "fed-omniglot-5w1s", "--out", str(out), "--rounds", "2", "--superlink", federation,
            "--nodes", "3", "--set", "fed.fraction=0.7", *TINY]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    # int(0.7 x 3) = 2 of the 3 SuperNodes per round, the arrays down and back, counted per message
    cfg = validate(apply_overrides(load_preset("fed-omniglot-5w1s"), ["model.width=8"]))
    from metalearn.federated.fedmeta import client_algorithm, shared_keys
    from metalearn.federated.flower_apps import split_of
    algo = client_algorithm(cfg, split_of(cfg)["train"][0])
    from flwr.app import ArrayRecord
    per_model = ArrayRecord(torch_state_dict={k: v for k, v in algo.state_dict().items()
                                              if k in shared_keys(cfg, algo)}).count_bytes()
    assert rows[0]["bytes"] == 0
    assert rows[1]["bytes"] == 2 * 2 * per_model
    assert rows[2]["bytes"] == 2 * rows[1]["bytes"]
    result = json.loads((out / "eval/federated.json").read_text())
    assert len(result["clients"]) == 5 and result["steps"] == [0, 1] and result["bytes_total"] == rows[2]["bytes"]
    assert "held-out clients" in capsys.readouterr().out
    assert (out / "checkpoints/best.pt").exists() and (out / "report/rounds.png").exists()
    # the run folder holds one run: a second submission to it is refused before anything is sent
    from cli_helpers import cli_error
    cli_error(capsys, argv, "already holds a run")


def test_the_generated_app_names_metalearns_components_and_carries_the_config(tmp_path):
    cfg = validate(apply_overrides(load_preset("fed-omniglot-5w1s"), ["fed.rounds=7", "model.width=8"]))
    path = write_app(cfg, tmp_path / "out", tmp_path / "app", 3)
    conf = tomllib.loads(path.read_text())
    assert conf["tool"]["flwr"]["app"]["components"] == {"serverapp": "metalearn.federated.flower_components:server_app",
                                                         "clientapp": "metalearn.federated.flower_components:client_app"}
    run_config = conf["tool"]["flwr"]["app"]["config"]
    assert json.loads(run_config["metalearn-config"]) == cfg.to_dict()
    assert run_config["out"] == str(tmp_path / "out") and run_config["min-nodes"] == 3
    pytest.importorskip("flwr")
    from flwr.cli.config_utils import load_and_validate
    _, warnings = load_and_validate(path)   # Flower accepts it: the components import and exist
    assert not warnings


def test_bad_deployment_input_is_one_line(capsys, tmp_path):
    pytest.importorskip("ray")
    from cli_helpers import cli_error
    base = ["federate", "fed-omniglot-5w1s", "--out", str(tmp_path / "r")]
    cli_error(capsys, [*base, "--nodes", "3"], "--nodes and --root-certificates go with --superlink")
    cli_error(capsys, [*base, "--superlink", "localhost"], "--superlink takes HOST:PORT")
    cli_error(capsys, [*base, "--superlink", "127.0.0.1:1", "--strategy", "central"], "needs no federation")
    if DATA:
        cli_error(capsys, [*base, "--superlink", "127.0.0.1:1", "--nodes", "41"],
                  "fed.nodes=41 but there are 40 training clients")
        cli_error(capsys, [*base, "--superlink", f"127.0.0.1:{free_port()}"], "cannot reach a Flower SuperLink at")
