"""The federated run on Flower 1.x's Message API (extra ``metalearn-torch[federated]``): a ``ClientApp``
whose train handler runs one client's local update (:func:`metalearn.federated.fedmeta.local_update`), a
``ServerApp`` whose main loop is Flower's message-based ``FedAvg`` strategy (sampling
``fed.fraction`` of the training clients per round, averaging what they send, weighted by their
data sizes) with a server-side evaluation on the validation clients every ``fed.eval_every``
rounds, and :func:`federate`, which runs both in Flower's simulation engine (one virtual SuperNode
per training client) and writes the run folder: ``config.yaml``, ``metrics.jsonl`` (the
validation score, ``val_acc`` or ``val_rmse``, and bytes sent, per round), ``checkpoints/best.pt``
and ``last.pt``, and the evaluation of the held-out test clients (``eval/federated.json`` and
``.md``).
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from .._util.files import atomic_write_png
from ..config import Config
from ..errors import ConfigError, MetalearnError, RunError
from ..runs import Run, RunLock, load_checkpoint, save_checkpoint
from ..runs.metrics_log import MetricsLog
from ..tasks.federated.clients import Client
from .fedmeta import (
    FEDERATED,
    FedEvaluation,
    check_settings,
    client_algorithm,
    client_metric,
    client_scores,
    federated_clients,
    local_update,
    shared_keys,
    train_central,
    validation_rows,
)
from .flower_log import to_log_file


def flower() -> Any:
    """flwr with its simulation engine, or a one-line error naming the extra."""
    try:
        import flwr
        import ray  # noqa: F401
        from flwr.simulation import run_simulation  # noqa: F401
    except ImportError:
        raise ConfigError("federated runs need Flower with its simulation engine; install it with "
                          "pip install 'metalearn-torch[federated]'") from None
    return flwr


@dataclass
class FedRun:
    """What :func:`federate` did."""

    rounds: int
    best_round: int
    best_val: float
    bytes_total: int
    seconds: float
    evaluation: FedEvaluation


def train_reply(cfg: Config, clients: list[Client], msg: Any, context: Any) -> Any:
    """A ClientApp's train handler: node ``partition-id`` is training client ``clients[partition-id]``;
    it loads the server's arrays (and its own kept head, for FedAvg + fine-tuning), runs its local
    update and sends back the shared arrays."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

    torch.set_num_threads(1)
    pid = int(context.node_config["partition-id"])
    if not 0 <= pid < len(clients):
        raise ConfigError(f"this SuperNode's partition-id is {pid}, but there are {len(clients)} training clients "
                          f"(0 to {len(clients) - 1}); start it with --node-config 'partition-id=N' in that range")
    client = clients[pid]
    algo = client_algorithm(cfg, client)
    state = algo.state_dict()
    state.update(cast(ArrayRecord, msg.content["arrays"]).to_torch_state_dict())
    if "local" in context.state:   # FedAvg + fine-tuning: the client's own head, kept between rounds
        state.update(cast(ArrayRecord, context.state["local"]).to_torch_state_dict())
    algo.load_state_dict(state)
    round_ = int(cast(int, cast(ConfigRecord, msg.content["config"])["server-round"]))
    gen = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + round_ * 1009 + pid)
    loss = local_update(cfg, algo, client, gen)
    keys = shared_keys(cfg, algo)
    full = algo.state_dict()
    local = {k: v for k, v in full.items() if k not in keys}
    if local:
        context.state["local"] = ArrayRecord(torch_state_dict=local)
    content = RecordDict({"arrays": ArrayRecord(torch_state_dict={k: full[k] for k in keys}),
                          "metrics": MetricRecord({"num-examples": client.size,
                                                   "train_loss": loss})})
    return Message(content=content, reply_to=msg)


def partition_reply(msg: Any, context: Any) -> Any:
    """A ClientApp's query handler: which training client this node is (its ``partition-id``), so
    that the server samples and averages clients in an order that does not depend on Flower's
    random node ids or on the order replies arrive in."""
    from flwr.app import Message, MetricRecord, RecordDict

    pid = int(context.node_config["partition-id"])
    return Message(content=RecordDict({"metrics": MetricRecord({"partition-id": pid})}), reply_to=msg)


def client_app(cfg: Config, clients: list[Client]) -> Any:
    """The ClientApp of a simulation: node ``partition-id`` is training client ``clients[partition-id]``."""
    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return train_reply(cfg, clients, msg, context)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return partition_reply(msg, context)

    return app


class _Partitions:
    """The training client (``partition-id``) of each connected node, asked once per new node."""

    def __init__(self, grid: Any) -> None:
        self.grid = grid
        self.of: dict[int, int] = {}

    def refresh(self) -> dict[int, int]:
        from flwr.app import Message, MessageType, MetricRecord, RecordDict

        new = [n for n in self.grid.get_node_ids() if n not in self.of]
        if new:
            asks = [Message(content=RecordDict(), dst_node_id=n, message_type=MessageType.QUERY) for n in new]
            for reply in self.grid.send_and_receive(asks):
                if not reply.has_error() and "metrics" in reply.content:
                    metrics = cast(MetricRecord, reply.content["metrics"])
                    self.of[reply.metadata.src_node_id] = int(cast(int, metrics["partition-id"]))
        return self.of

    def sample(self, fraction: float, minimum: int, seed: int, server_round: int) -> list[int]:
        """``fraction`` of the known nodes (at least ``minimum``), drawn by partition id with a
        generator seeded by ``seed`` and the round: the same clients on every run."""
        by_pid = {pid: node for node, pid in self.refresh().items()}
        pids = sorted(by_pid)
        k = min(len(pids), max(int(len(pids) * fraction), minimum))
        rng = random.Random(seed * 1_000_003 + server_round)
        return [by_pid[p] for p in sorted(rng.sample(pids, k))]

    def order(self, replies: list[Any]) -> list[Any]:
        """Replies sorted by their node's partition id (a float sum in one order every run)."""
        return sorted(replies, key=lambda m: self.of.get(m.metadata.src_node_id, 1 << 62))


def plot_rounds(run: Run, others: Sequence[Run] = ()) -> Path | None:
    """The validation score against rounds and against megabytes sent (``report/rounds.png``), with
    other federated runs beside it; None when matplotlib is not installed."""
    try:
        from ..report.figures import _pyplot
        plt = _pyplot()
    except MetalearnError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in [run, *others]:
        key, rows = validation_rows(r.read_metrics())
        if not rows:
            continue
        ylabel = f"validation clients' {key[4:]} after adaptation" + (" (%)" if key == "val_acc" else "")
        label = f"{r.path.name} ({r.load_config().fed.strategy})"
        axes[0].plot([row["step"] for row in rows], [row[key] for row in rows], marker=".", label=label)
        axes[1].plot([row["bytes"] / 1e6 for row in rows], [row[key] for row in rows], marker=".", label=label)
        axes[0].set_ylabel(ylabel)
    for ax, xlabel in zip(axes, ("round", "megabytes sent (down and up)")):
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    if axes[0].lines:
        axes[0].legend(fontsize=8)
    out = run.report_dir / "rounds.png"
    atomic_write_png(fig, out)
    plt.close(fig)
    return out


def _evaluate_test(cfg: Config, algo: Any, clients: list[Client], bytes_total: int) -> FedEvaluation:
    """The held-out test clients before and after ``eval.steps`` inner steps (the same episodes for
    every strategy with the same ``eval.seed``); a baseline that adapts with steps of its own (the
    own-data network's 100 Adam steps, FedAvg's 100 head-fitting steps) also after those."""
    own = {int(algo.inner_steps)} if cfg.fed.strategy in ("own_data", "fedavg_ft") else set()
    steps = sorted({0, *cfg.eval.steps} | own)
    scores = client_scores(algo, clients, cfg.fed.eval_episodes, max(steps), cfg.eval.seed)
    metric = client_metric(clients)
    return FedEvaluation(cfg.fed.strategy, [c.name for c in clients], steps, scores[:, steps].tolist(), cfg.fed.rounds,
                         bytes_total, metric=metric.name, higher_is_better=metric.higher_is_better)


def split_of(cfg: Config) -> dict[str, list[Client]]:
    """The training, validation and test clients of ``cfg`` (:func:`metalearn.federated.fedmeta.federated_clients`)."""
    return federated_clients(cfg)


def evaluate_again(path: Path | str, steps: list[int]) -> FedEvaluation:
    """Score a finished federated run's best checkpoint on its held-out test clients again, after
    ``steps`` inner steps (e.g. the 100 head-fitting steps of FedAvg + fine-tuning)."""
    run = Run.open(path)
    cfg = run.load_config()
    cfg.eval.steps = steps
    parts = split_of(cfg)
    algo = client_algorithm(cfg, parts["train"][0])
    algo.load_state_dict(load_checkpoint(run.best_checkpoint)["model"])
    old = FedEvaluation.load(run)
    evaluation = _evaluate_test(cfg, algo, parts["test"], old.bytes_total)
    evaluation.save(run)
    return evaluation


def open_run(cfg: Config, out: Path | str) -> tuple[Run, RunLock]:
    """A new run folder for ``cfg``, locked (one writer), its config saved."""
    run = Run(out)
    if (run.path / "metrics.jsonl").exists() or (run.path / "eval" / "federated.json").exists():
        raise RunError(f"{run.path} already holds a run; choose another folder")
    run.path.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run.path).acquire()
    run.save_config(cfg)
    return run, lock


def serve(cfg: Config, run: Run, grid: Any, min_nodes: int, progress: bool = True,
          parts: dict[str, list[Client]] | None = None) -> FedRun:
    """The server's side of a federated run (the body of both ServerApps, simulated and deployed):
    Flower's message-based ``FedAvg`` over the connected SuperNodes (``fed.fraction`` of them per
    round, at least ``min_nodes`` connected before the first), validation on the validation clients
    every ``fed.eval_every`` rounds with the best and last checkpoints, then the held-out test
    clients scored with the best checkpoint, and the rounds picture."""
    from flwr.app import ArrayRecord, ConfigRecord, MessageType, MetricRecord, RecordDict
    from flwr.serverapp.strategy import FedAvg

    f = cfg.fed
    parts = parts or split_of(cfg)
    train_clients, val_clients, test_clients = parts["train"], parts["validation"], parts["test"]
    server = client_algorithm(cfg, train_clients[0])
    keys = shared_keys(cfg, server)
    initial = ArrayRecord(torch_state_dict={k: v for k, v in server.state_dict().items() if k in keys})
    sent = [0]   # bytes of the arrays sent down to the sampled clients and back, counted message by message
    log = MetricsLog(run.path / "metrics.jsonl", run.path / "tb")
    best: dict[str, Any] = {"val": float("nan"), "round": -1}   # round 0: the initial model, before any training
    metric = client_metric(val_clients)
    key = f"val_{metric.short}"
    started = time.perf_counter()

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round % f.eval_every and server_round != f.rounds:
            return None
        state = server.state_dict()
        state.update(arrays.to_torch_state_dict())
        server.load_state_dict(state)
        scores = client_scores(server, val_clients, f.eval_episodes, cfg.algo.inner_steps, cfg.eval.seed + 1)
        value = float(scores[:, -1].mean())
        row = {key: value, "bytes": sent[0],
               "seconds": round(time.perf_counter() - started, 3)}
        log.log(server_round, **row)
        save_checkpoint(run.checkpoint_dir / "last.pt", {"step": server_round, "model": server.state_dict(),
                                                         "algorithm": server.name, "config": cfg.to_dict()})
        if best["round"] < 0 or (value > best["val"] if metric.higher_is_better else value < best["val"]):
            best.update(val=value, round=server_round)
            save_checkpoint(run.checkpoint_dir / "best.pt", {"step": server_round, "model": server.state_dict(),
                                                             "algorithm": server.name, key: value})
        if progress:
            print(f"round {server_round}/{f.rounds}: validation {metric.name} {value:.2f} "
                  f"({sent[0] / 1e6:.1f} MB sent)", flush=True)
        return MetricRecord({key: value})

    partitions = _Partitions(grid)

    class CountingFedAvg(FedAvg):
        def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                            grid: Any) -> list[Any]:
            # FedAvg's own sampling (random.sample over Flower's random node ids) differs between runs
            # with the same seed; this one draws partition ids with a seeded generator instead
            while len(list(grid.get_node_ids())) < max(min_nodes, 1):
                time.sleep(1)
            nodes = partitions.sample(self.fraction_train, self.min_train_nodes, cfg.train.seed, server_round)
            config["server-round"] = server_round
            record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
            messages = list(self._construct_messages(record, nodes, MessageType.TRAIN))
            sent[0] += len(messages) * arrays.count_bytes()
            return messages

        def aggregate_train(self, server_round: int, replies: Any) -> Any:
            replies = partitions.order(list(replies))
            sent[0] += sum(cast(ArrayRecord, m.content["arrays"]).count_bytes() for m in replies
                           if not m.has_error() and "arrays" in m.content)
            return super().aggregate_train(server_round, replies)

    strategy = CountingFedAvg(fraction_train=f.fraction, fraction_evaluate=0.0, min_train_nodes=1,
                              min_evaluate_nodes=0, min_available_nodes=min_nodes)
    try:
        strategy.start(grid=grid, initial_arrays=initial, num_rounds=f.rounds,
                       train_config=ConfigRecord({"local-steps": f.local_steps}), evaluate_fn=evaluate_fn)
    finally:
        log.close()
    if best["round"] < 0:
        raise RunError(f"the federated run in {run.path} ended before its first evaluation (Flower's log above says "
                       f"why); check that the simulation engine or the SuperNodes run")
    # the held-out test clients, with the best checkpoint on the validation clients
    server.load_state_dict(load_checkpoint(run.best_checkpoint)["model"])
    evaluation = _evaluate_test(cfg, server, test_clients, sent[0])
    evaluation.save(run)
    plot_rounds(run)
    return FedRun(f.rounds, best["round"], best["val"], sent[0], time.perf_counter() - started,
                  evaluation)


def _reference(cfg: Config, run: Run, parts: dict[str, list[Client]]) -> FedRun:
    """A reference that needs no federation (``central``, ``own_data``): nothing is sent."""
    server = client_algorithm(cfg, parts["train"][0])
    started = time.perf_counter()
    if cfg.fed.strategy == "central":
        train_central(cfg, server, parts["train"], torch.Generator().manual_seed(cfg.train.seed))
    save_checkpoint(run.checkpoint_dir / "best.pt", {"step": cfg.fed.rounds, "model": server.state_dict(),
                                                     "algorithm": server.name})
    evaluation = _evaluate_test(cfg, server, parts["test"], 0)
    evaluation.save(run)
    return FedRun(cfg.fed.rounds, cfg.fed.rounds, float("nan"), 0, time.perf_counter() - started, evaluation)


def federate(cfg: Config, out: Path | str, progress: bool = True) -> FedRun:
    """Federated meta-learning of ``cfg`` (its ``fed`` section) into the run folder ``out``, on
    Flower's simulation engine: one virtual SuperNode per training client."""
    check_settings(cfg)
    flower()
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    parts = split_of(cfg)
    train_clients = parts["train"]
    run, lock = open_run(cfg, out)
    if cfg.fed.strategy not in FEDERATED:
        try:
            return _reference(cfg, run, parts)
        finally:
            lock.release()
    result: list[FedRun] = []
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Any) -> None:
        result.append(serve(cfg, run, grid, len(train_clients), progress, parts))

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray and Flower install their own SIGINT/SIGTERM handlers: give the process its own back after
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with to_log_file(run.path / "flower.log"):   # the terminal keeps metalearn's round lines
            run_simulation(server_app=app, client_app=client_app(cfg, train_clients),
                           num_supernodes=len(train_clients),
                           backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                           "init_args": {"num_cpus": max(1, cfg.train.threads), "log_to_driver": False,
                                                         "include_dashboard": False}},
                           verbose_logging=False)
    finally:
        lock.release()
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    if not result:
        raise RunError(f"the federated run in {run.path} did not finish ({run.path / 'flower.log'} says why); "
                       f"check that the simulation engine runs here")
    return result[0]
