"""Federated meta-learning over clients that are natural groups of tasks (Omniglot alphabets, or
the groups of a grouped table: patients, hospitals), run on Flower's Message API
(``flower_apps``). What a client does in a round, and how held-out clients are scored, lives here;
each client's local step is the registered algorithm's own code.

Strategies (``fed.strategy``):

* ``fedmeta``: FedMeta (Chen, Luo, Dong, Li & He 2018, "Federated Meta-Learning with Fast
  Convergence and Efficient Communication"): a sampled client runs ``fed.local_steps`` meta-updates
  (Adam, ``fed.local_lr``) of the configured algorithm (MAML, first-order MAML, Meta-SGD, ...) on
  its own episodes; the server averages the meta-parameters, weighted by the clients' data sizes.
* ``perfedavg``: Per-FedAvg (Fallah, Mokhtari & Ozdaglar 2020, "Personalized Federated Learning
  with Theoretical Guarantees: A Model-Agnostic Meta-Learning Approach"), its first-order variant:
  local SGD steps on the first-order MAML objective, averaged by the server.
* ``fedavg_ft``: the transfer baseline trained federatedly: each client trains the shared feature
  extractor with its own classification head over its own characters (kept on the client between
  rounds, never sent), the server averages the extractor (FedAvg, McMahan et al. 2017); a held-out
  client fits a new head on its few labelled examples. On a grouped table: FedAvg of the pooled
  model (the family's ``pretrain`` baseline, trained on the clients' rows), fine-tuned on a held-out
  client's support rows with the inner steps.

References scored on the same held-out clients and episodes: ``central``, the configured algorithm
trained centrally on the training clients' episodes (one client drawn per local meta-update, Adam)
for as many meta-updates as the federation's clients made in all, the upper reference; and
``own_data``, the same network from its random initialisation trained on a held-out client's few
examples alone (the ``scratch`` algorithm, Adam).
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from .._util.files import atomic_write_text
from ..algorithms import Algorithm
from ..batch import TaskBatch
from ..config import Config
from ..errors import ConfigError
from ..evaluation.stats import mean_ci, paired
from ..protocols import Metric, TaskFamily
from ..runs import Run
from ..tasks import get_task_family
from ..tasks.federated.clients import Client
from ..tasks.registry import federated_families
from ..tasks.tables.grouped import TableTasks
from ..training.build import build_algorithm, build_tasks

STRATEGIES = ("fedmeta", "perfedavg", "fedavg_ft", "central", "own_data")
FEDERATED = ("fedmeta", "perfedavg", "fedavg_ft")   # the others are references, run without Flower


def check_settings(cfg: Config) -> None:
    """Refuse ``fed.*`` settings that cannot run (an unknown strategy, a count that is not positive, a
    fraction outside (0, 1]), naming the fix."""
    f = cfg.fed
    if f.strategy not in STRATEGIES:
        raise ConfigError(f"unknown fed.strategy {f.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    for key in ("rounds", "local_steps", "local_batch", "eval_every", "eval_episodes"):
        if getattr(f, key) <= 0:
            raise ConfigError(f"fed.{key} must be positive, got {getattr(f, key)}")
    if f.central not in ("updates", "steps"):
        raise ConfigError(f"fed.central must be updates or steps (how the centralised reference counts), got "
                          f"{f.central!r}")
    if f.nodes < 0:
        raise ConfigError(f"fed.nodes must be 0 (one SuperNode per training client) or positive, got {f.nodes}")
    if not 0 < f.fraction <= 1:
        raise ConfigError(f"fed.fraction must be in (0, 1], got {f.fraction}")


def federated_clients(cfg: Config) -> dict[str, list[Client]]:
    """The training, validation and test clients of ``cfg``, as its task family's registry entry
    splits them (``clients``): Omniglot alphabets split by ``fed.client_seed`` and ``fed.split``, or
    the groups of a grouped table's own split."""
    t, f = cfg.task, cfg.fed
    entry = get_task_family(t.family)
    if entry.clients is None:
        raise ConfigError(f"federated clients are Omniglot alphabets or the groups of a grouped table (task.family "
                          f"one of: {', '.join(federated_families())}); got task.family={t.family}")
    return entry.clients(t, f.client_seed, (f.split[0], f.split[1], f.split[2]),
                         lambda split: build_tasks(cfg, split))


def client_config(cfg: Config, tasks: TaskFamily | None = None) -> Config:
    """The config a client builds its algorithm from: for FedAvg + fine-tuning the family's pooled
    baseline (the transfer learner on images, ``pretrain`` on tables), first-order MAML for
    Per-FedAvg, the configured algorithm for FedMeta."""
    c = copy.deepcopy(cfg)
    if cfg.fed.strategy == "own_data":
        c.algo.name = "scratch"
        c.algo.inner_lr, c.algo.inner_steps = 0.001, 100
    elif cfg.fed.strategy == "fedavg_ft" and isinstance(tasks, TableTasks):
        c.algo.name = tasks.baseline   # fine-tuned with the configured inner steps
    elif cfg.fed.strategy == "fedavg_ft":
        c.algo.name = "transfer"
        c.algo.inner_steps = max(cfg.algo.inner_steps, 100)   # head-fitting steps at test time
    elif cfg.fed.strategy == "perfedavg":
        c.algo.mode = "first_order"
    return c


def client_algorithm(cfg: Config, client: Client) -> Algorithm:
    """The algorithm a client trains (initialised from ``train.seed``, so every client and the server
    start from the same weights)."""
    c = client_config(cfg, cast(TaskFamily, client.tasks))
    return build_algorithm(c, cast(TaskFamily, client.tasks), c.algo.name)


def shared_keys(cfg: Config, algo: Algorithm) -> list[str]:
    """The state a client sends and the server averages: everything, except the client's own
    classification head under FedAvg + fine-tuning."""
    keys = list(algo.state_dict())
    if cfg.fed.strategy == "fedavg_ft":
        keys = [k for k in keys if k.startswith("model.")]
    return keys


def local_update(cfg: Config, algo: Algorithm, client: Client, generator: torch.Generator) -> float:
    """One round of a sampled client: ``fed.local_steps`` updates of ``algo`` on the client's own
    episodes (or, for ``fedavg_ft``, mini-batches of its characters); the mean local loss."""
    f = cfg.fed
    params = [p for p in algo.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, lr=f.local_lr) if f.strategy == "perfedavg"
           else torch.optim.Adam(params, lr=f.local_lr))
    source = algo.training_tasks(client.tasks)
    batch_size = f.local_batch * 32 if source is not client.tasks else f.local_batch   # plain batches: x32
    total = 0.0
    for _ in range(f.local_steps):
        batch = source.sample(batch_size, generator)
        opt.zero_grad(set_to_none=True)
        loss = algo.meta_backward(batch)
        if not math.isfinite(float(loss)):
            raise ConfigError(f"client {client.name}: the local loss became {float(loss)}; lower fed.local_lr")
        opt.step()
        total += float(loss)
    return total / f.local_steps


def updates_per_round(cfg: Config, train_clients: int) -> int:
    """Clients sampled per round (Flower's FedAvg: the fraction, rounded down, at least one)."""
    return max(int(train_clients * cfg.fed.fraction), 1)


def train_central(cfg: Config, algo: Algorithm, clients: list[Client], generator: torch.Generator) -> int:
    """The centralised reference, on the same number of episodes as the federation's sampled
    clients used in all, with one Adam; returns the number of updates. ``fed.central=updates``:
    as many meta-updates as those clients made (rounds x clients per round x local steps), each on
    ``fed.local_batch`` episodes of one training client drawn at random; ``fed.central=steps``: as
    many sequential meta-steps as a client makes (rounds x local steps), each on a meta-batch of
    ``fed.local_batch`` episodes from each of as many random clients as a round samples."""
    f = cfg.fed
    per_round = updates_per_round(cfg, len(clients))
    total, draws = ((f.rounds * per_round * f.local_steps, 1) if f.central == "updates"
                    else (f.rounds * f.local_steps, per_round))
    opt = torch.optim.Adam([p for p in algo.parameters() if p.requires_grad], lr=f.local_lr)
    for _ in range(total):
        picked = torch.randint(len(clients), (draws,), generator=generator).tolist()
        batch = TaskBatch.cat([clients[i].tasks.sample(f.local_batch, generator) for i in picked])
        opt.zero_grad(set_to_none=True)
        algo.meta_backward(batch)
        opt.step()
    return total


def client_metric(clients: list[Client]) -> Metric:
    """How the clients are scored: their family's metric (accuracy in %, or RMSE in the target's units)."""
    return cast(Metric, clients[0].tasks.metric)


def client_scores(algo: Algorithm, clients: list[Client], episodes: int, steps: int, seed: int) -> Tensor:
    """Each client's mean score (its family's metric, scaled: accuracy in %, RMSE in the target's
    units) over its held-out episodes (``episodes`` episodes of its characters, or its group's
    evaluation rows), before adaptation and after 1..``steps`` inner steps: ``[clients, steps + 1]``.
    Episodes depend only on the client and ``seed``, so every method is scored on the same ones."""
    metric = client_metric(clients)
    rows = []
    for c in clients:
        gen = torch.Generator().manual_seed(seed * 100_003 + sum(map(ord, c.name)))
        batch = c.held_out_episodes(episodes, gen)
        rows.append(metric.scale * algo.adaptation_curve(batch, steps, metric=metric.fn).mean(0))
    return torch.stack(rows)


@dataclass
class FedEvaluation:
    """Scores of held-out clients before and after adaptation (accuracy in %, or an error such as
    RMSE), per client and summarised."""

    strategy: str
    clients: list[str]
    steps: list[int]
    per_client: list[list[float]]          # [clients][steps + 1]
    rounds: int
    bytes_total: int
    paired: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None
    metric: str = "accuracy (%)"
    higher_is_better: bool = True

    @property
    def worst_tenth(self) -> str:
        """What ``worst_decile`` is: the 10th percentile of an accuracy, the 90th of an error."""
        return "10th percentile" if self.higher_is_better else "90th percentile"

    def summary(self) -> list[dict[str, float]]:
        values = torch.tensor(self.per_client)
        out = []
        for s in range(values.shape[1]):
            m, ci = mean_ci(values[:, s])
            v = values[:, s]
            out.append({"mean": m, "ci": ci, "p10": float(torch.quantile(v, 0.1)),
                        "worst_decile": float(torch.quantile(v, 0.1 if self.higher_is_better else 0.9)),
                        "min": float(v.min()), "max": float(v.max())})
        return out

    def table(self) -> str:
        head = "| method | " + " | ".join("before" if s == 0 else f"{s} step{'s' * (s > 1)}" for s in self.steps) + " |"
        rule = "|---|" + "---:|" * len(self.steps)
        summ = self.summary()   # one entry per reported step count, in the order of self.steps
        cells = " | ".join(f"{x['mean']:.2f} ± {x['ci']:.2f}" for x in summ)
        worst = " | ".join(f"{x['worst_decile']:.2f}" for x in summ)
        better = "higher" if self.higher_is_better else "lower"
        lines = [f"{self.metric[:1].upper() + self.metric[1:]} on {len(self.clients)} held-out clients ({better} is "
                 f"better; mean over clients ± 95% CI; each client the mean of its episodes), {self.strategy}, "
                 f"{self.rounds} rounds, {self.bytes_total / 1e6:.1f} MB sent in all", "", head, rule,
                 f"| {self.strategy} | {cells} |",
                 f"| {self.strategy}, {self.worst_tenth} of clients (the worst tenth) | {worst} |"]
        for label, d in self.paired.items():
            lines += ["", f"Paired over the same clients and episodes, {label} (mean ± 95% CI; clients won / lost):",
                      "", head, rule, f"| {label} | " + " | ".join(self._paired_cell(d, i)
                                                                   for i in range(len(self.steps))) + " |"]
        return "\n".join(lines)

    def _paired_cell(self, d: dict[str, Any], i: int) -> str:
        against = d.get("against_steps", self.steps)[i]
        other = f" vs its {against} step{'s' * (against != 1)}" if against != self.steps[i] else ""
        return f"{d['mean'][i]:+.2f} ± {d['ci'][i]:.2f} ({d['wins'][i]}/{d['losses'][i]}){other}"

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "metric": self.metric, "higher_is_better": self.higher_is_better,
                "clients": self.clients, "steps": self.steps, "per_client": self.per_client, "rounds": self.rounds,
                "bytes_total": self.bytes_total, "summary": self.summary(), "paired": self.paired}

    @classmethod
    def load(cls, run: Run) -> FedEvaluation:
        path = run.path / "eval" / "federated.json"
        if not path.is_file():
            raise ConfigError(f"{run.path} has no federated evaluation ({path}); run 'metalearn federate' to the end")
        d = json.loads(path.read_text())
        return cls(d["strategy"], d["clients"], d["steps"], d["per_client"], d["rounds"], d["bytes_total"],
                   d.get("paired", {}), path, d.get("metric", "accuracy (%)"), d.get("higher_is_better", True))

    def save(self, run: Run) -> Path:
        path = run.path / "eval" / "federated.json"
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        atomic_write_text(path.with_suffix(".md"), self.table() + "\n")
        self.path = path
        return path


def validation_key(rows: list[dict[str, Any]]) -> str | None:
    """The validation score's key in a federated run's metrics rows (``val_acc``, ``val_rmse``, ...)."""
    for row in rows:
        for key in row:
            if key.startswith("val_"):
                return key
    return None


def validation_rows(rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The validation score's key (``val_acc`` when there is none yet) and the rows that hold it."""
    key = validation_key(rows) or "val_acc"
    return key, [row for row in rows if key in row]


def rounds_to_reach(rows: list[dict[str, Any]], value: float, higher_is_better: bool = True) -> tuple[int, int] | None:
    """``(round, bytes)`` of the first validation at least as good as ``value`` in a run's metrics
    rows, or None when it never got there."""
    key = validation_key(rows)
    for row in rows:
        if key in row and (row[key] >= value if higher_is_better else row[key] <= value):
            return int(row["step"]), int(row["bytes"])
    return None


def compare_with(result: FedEvaluation, other: FedEvaluation) -> dict[str, Any]:
    """The paired difference ``result - other`` per adaptation step over the same held-out clients."""
    if result.clients != other.clients:
        raise ConfigError("the two federated runs held out different clients; give them the same fed.client_seed "
                          "(task.split_seed for a table)")
    if result.metric != other.metric:
        raise ConfigError(f"the two federated runs are scored differently ({result.metric} against {other.metric}); "
                          f"compare runs of the same task")
    a, b = torch.tensor(result.per_client), torch.tensor(other.per_client)
    better = "higher" if result.higher_is_better else "lower"
    # each step count against the other's same count, or its last one when it has no such column
    against = [s if s in other.steps else other.steps[-1] for s in result.steps]
    rows = [paired(a[:, i], b[:, other.steps.index(t)], better) for i, t in enumerate(against)]
    return {"mean": [r.mean for r in rows], "ci": [r.ci for r in rows], "wins": [r.wins for r in rows],
            "losses": [r.losses for r in rows], "against_steps": against}
