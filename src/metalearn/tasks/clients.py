"""Federated clients as natural groups of tasks: one client per Omniglot alphabet.

Each of Omniglot's 50 alphabets (30 background, 20 evaluation; 14 to 55 characters each) is a
client whose few-shot episodes are drawn within its own characters, so clients hold non-identical
character sets, as the groups of federated data do (the client protocol of FedMeta, Chen et al.
2018, and of LEAF's Omniglot-like FEMNIST writers). Clients are split into train / validation /
test clients by a seed: held-out clients never take part in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.omniglot import load_omniglot
from ..errors import ConfigError
from .few_shot import FewShotTasks

CLIENT_SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Client:
    """One client: its name and the task family of its own data."""

    name: str
    tasks: FewShotTasks


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
