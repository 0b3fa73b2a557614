"""The Flower app that ``flwr run`` deploys (``metalearn federate ... --superlink HOST:PORT``):
module-level ``server_app`` and ``client_app``, named by the generated app's ``pyproject.toml``.

Only Flower's own processes import this module (the SuperLink's ``flwr-serverapp`` and each
SuperNode's ``flwr-clientapp``), so it imports Flower at the top. The run config carries the
resolved metalearn config (``metalearn-config``, JSON) and the run folder (``out``, written on the
SuperLink's machine); each SuperNode is one training client, chosen by its ``partition-id``
(``flower-supernode --node-config 'partition-id=N'``) and reading its data from its own machine.
The server and client bodies are the simulation's (:func:`metalearn.federated.flower_apps.serve`,
:func:`metalearn.federated.flower_apps.train_reply`).
"""
from __future__ import annotations

import functools
import json
from typing import cast

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from ..config import Config, config_from_dict, validate
from ..tasks.federated.clients import Client
from .flower_apps import open_run, partition_reply, serve, split_of, train_reply


@functools.lru_cache(maxsize=2)
def _config(text: str) -> Config:
    return validate(config_from_dict(json.loads(text)))


@functools.lru_cache(maxsize=2)
def _training_clients(text: str) -> list[Client]:
    return split_of(_config(text))["train"]


server_app = ServerApp()
client_app = ClientApp()


@server_app.main()
def _main(grid: Grid, context: Context) -> None:
    text = str(context.run_config["metalearn-config"])
    cfg = _config(text)
    run, lock = open_run(cfg, str(context.run_config["out"]))
    try:
        serve(cfg, run, grid, int(context.run_config["min-nodes"]), progress=True)
    finally:
        lock.release()


@client_app.query()
def _query(msg: Message, context: Context) -> Message:
    return cast(Message, partition_reply(msg, context))


@client_app.train()
def _train(msg: Message, context: Context) -> Message:
    text = str(context.run_config["metalearn-config"])
    return train_reply(_config(text), _training_clients(text), msg, context)
