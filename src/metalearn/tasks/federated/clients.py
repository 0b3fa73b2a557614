"""Federated clients as natural groups of tasks: one client per Omniglot alphabet, or one per
group of a grouped table (a patient, a hospital).

Each of Omniglot's 50 alphabets (30 background, 20 evaluation; 14 to 55 characters each) is a
client whose few-shot episodes are drawn within its own characters, so clients hold non-identical
character sets, as the groups of federated data do (the client protocol of FedMeta, Chen et al.
2018, and of LEAF's Omniglot-like FEMNIST writers). Alphabet clients are split into train /
validation / test clients by a seed: held-out clients never take part in training.

A grouped table's client is one group: its training tasks are drawn from its own rows (the
family's row protocol), and as a held-out client it adapts on its first (or randomly drawn)
support rows and is scored on all the others, as the ``groups`` evaluator does. Table clients
follow the family's own group split (``task.split``, ``task.split_seed``), whose input encoding
uses the training groups' statistics only.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...batch import TaskBatch
from ...data.omniglot import load_omniglot
from ...errors import ConfigError
from ..few_shot.episodes import FewShotTasks
from ..tables.grouped import TableTasks

CLIENT_SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Client:
    """One client: its name and the task family of its own data (an alphabet's characters, or one
    group's rows)."""

    name: str
    tasks: FewShotTasks | TableTasks

    @property
    def size(self) -> int:
        """Its number of examples (images or rows): the weight of its update in the server's average."""
        if isinstance(self.tasks, TableTasks):
            return len(self.tasks.groups[0])
        return int(self.tasks.dataset.images.shape[0])

    def held_out_episodes(self, n: int, generator: torch.Generator) -> TaskBatch:
        """The episodes a held-out client is scored on: ``n`` few-shot episodes of its characters, or
        for a group the evaluation protocol's support rows and every other row as query (once when
        the support is its first rows, else ``n`` draws)."""
        if not isinstance(self.tasks, TableTasks):
            return self.tasks.sample(n, generator)
        fam, g = self.tasks, self.tasks.groups[0]
        draws = 1 if g.time is not None and fam.support_until is None else n
        parts = [fam.split_for_eval(g, fam.shots, generator) for _ in range(draws)]
        return TaskBatch(torch.stack([g.x[s] for s, _ in parts]), torch.stack([g.y[s] for s, _ in parts]),
                         torch.stack([g.x[q] for _, q in parts]), torch.stack([g.y[q] for _, q in parts]))


def group_clients(family: TableTasks) -> list[Client]:
    """One client per group of a grouped-table family's split (the groups with enough rows for its
    tasks; the family warns about the others), each a copy of the family holding that group alone."""
    clients = []
    for g in family.groups:
        own = copy.copy(family)
        own.groups, own.all_groups, own.name = [g], [g], f"client {g.name}"
        clients.append(Client(str(g.name), own))
    return clients


def alphabet_clients(ways: int, shots: int, queries: int, image_size: int = 28,
                     data_dir: str | Path | None = None) -> list[Client]:
    """One client per Omniglot alphabet with at least ``ways`` characters, sorted by name."""
    ds, _ = load_omniglot(data_dir, image_size)
    by_alphabet: dict[str, list[int]] = {}
    for c, name in enumerate(ds.class_names):
        by_alphabet.setdefault(name.split("/")[0], []).append(c)
    clients = [Client(a, FewShotTasks(ds.subset(chars), ways, shots, queries, name=f"client {a}"))
               for a, chars in sorted(by_alphabet.items()) if len(chars) >= ways]
    if not clients:
        raise ConfigError(f"no Omniglot alphabet has {ways} characters; use --set task.ways=5")
    return clients


def split_clients(n: int, seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, list[int]]:
    """Client indices of the train / validation / test clients (disjoint, all clients used): a
    permutation by ``seed``, cut at the fractions (each held-out part gets at least one client)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"fed.split must be three non-negative fractions summing to 1, got {list(fractions)}")
    if n < 3:
        raise ConfigError(f"federated training needs at least 3 clients (train, validation, test), got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n))
    n_train = n - n_val - n_test
    return {"train": sorted(perm[:n_train]), "validation": sorted(perm[n_train:n_train + n_val]),
            "test": sorted(perm[n_train + n_val:])}


# what a task family's registry entry names as its ``clients``: the training, validation and test
# clients from the config's task section, fed.client_seed, fed.split and a builder of the family's
# own splits (``build("train")``), for ``metalearn federate``
ClientsFromConfig = Callable[[Any, int, tuple[float, float, float], Callable[[str], Any]], dict[str, list[Client]]]


def alphabet_clients_from_config(task: Any, seed: int, fractions: tuple[float, float, float],
                                 build: Callable[[str], Any]) -> dict[str, list[Client]]:
    """Omniglot alphabets as clients, split into training, validation and test clients by ``seed``."""
    clients = alphabet_clients(task.ways, task.shots, task.queries or task.shots, task.image_size, task.data_dir)
    split = split_clients(len(clients), seed, fractions)
    return {part: [clients[i] for i in idx] for part, idx in split.items()}


def group_clients_from_config(task: Any, seed: int, fractions: tuple[float, float, float],
                              build: Callable[[str], Any]) -> dict[str, list[Client]]:
    """The groups of a grouped table as clients, in the family's own group split (``task.split``)."""
    train = build("train")
    parts = {"train": train, "validation": build("validation"), "test": build("test")}
    out = {part: group_clients(fam) for part, fam in parts.items()}
    if len(out["train"]) < 2:
        raise ConfigError(f"{train.name} has {len(out['train'])} training group(s) with enough rows; federated "
                          f"training needs at least 2 (lower task.shots / task.queries, or give task.split more "
                          f"training groups)")
    return out
