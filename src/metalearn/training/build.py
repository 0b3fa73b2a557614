"""Build the task family, model, algorithm and trainer that a ``Config`` describes (the CLI's edge).

Everything here goes through the registries: a task family builds itself from the config's
``task`` section (``tasks.registry``), a model from its ``model`` section (``models.registry``),
an algorithm from its settings dataclass (``algorithms.registry``), and what fits with what is
read from their declarations (a family's ``kind`` against an algorithm's ``task_kinds`` and a
model's ``kinds``). No algorithm, family or model is named here.
"""
from __future__ import annotations

import copy
import sys
import time
from typing import Any

import torch
from torch import nn

from ..algorithms import Algorithm, get_spec
from ..config import Config
from ..errors import ConfigError
from ..integrations.mlflow import MLflowLogger
from ..integrations.wandb import WandbLogger
from ..models import get_model, list_models
from ..protocols import TaskFamily, declared
from ..tasks import get_task_family
from .distributed import DistContext
from .trainer import Trainer


def build_tasks(cfg: Config, split: str = "train", shots: int | None = None,
                queries: int | None = None, family: str | None = None, horizon: int | None = None,
                needs_rows: bool = True) -> TaskFamily:
    """The task family of ``cfg.task`` for ``split`` (train, validation or test); ``shots``,
    ``queries``, ``family`` and ``horizon`` override the config. A ``family`` other than the
    config's is a cross-domain test (e.g. an Omniglot model on MNIST digits).

    A config read from a run folder carries what the family fitted to its data (``cfg.fitted``),
    which the family is rebuilt from instead of refitting; with ``needs_rows`` False it need not
    read its data at all (adapting to a user's rows needs only the fitted encoder)."""
    t = cfg.task
    name = family or t.family
    entry = get_task_family(name)
    k = t.shots if shots is None else shots
    q = queries if queries is not None else (t.queries if t.queries is not None and shots is None else k)
    restore: dict[str, Any] = {}
    if cfg.fitted is not None and name == t.family:
        restore = {"fitted": cfg.fitted, "needs_rows": needs_rows}
    return entry.from_config(t, split, k, q, horizon=horizon, cross_domain=name != t.family, **restore)


def family_kind(cfg: Config) -> str:
    """The kind of task the config's family declares (without loading its data)."""
    return str(declared(get_task_family(cfg.task.family).cls, "kind", "regression"))


def build_model(cfg: Config, tasks: TaskFamily, encoder_only: bool = False) -> nn.Module:
    """The model of ``cfg.model`` for the family ``tasks``; ``encoder_only`` drops the classifier
    head (ProtoNets, transfer) so the model outputs embeddings."""
    entry = get_model(cfg.model.name)
    kind = declared(tasks, "kind", "regression")
    if kind not in entry.kinds:
        fits = [m for m in list_models() if kind in get_model(m).kinds]
        raise ConfigError(f"the {entry.name} model is for {' or '.join(entry.kinds)} tasks, but the "
                          f"{cfg.task.family} family gives {kind} tasks; use --set model.name="
                          f"{' or '.join(fits) or '...'}")
    return entry.build(cfg.model, tasks, encoder_only)


def build_algorithm(cfg: Config, tasks: TaskFamily, name: str | None = None) -> Algorithm:
    """Model and algorithm, with the model initialised from ``cfg.train.seed`` (the global random
    state is left as it was, so building has no side effect on another training in the process)."""
    spec = get_spec(name or cfg.algo.name)
    kind = declared(tasks, "kind", "regression")
    if kind not in spec.cls.task_kinds:
        raise ConfigError(f"{spec.name} works on {' and '.join(spec.cls.task_kinds)} tasks, but the "
                          f"{cfg.task.family} family gives {kind} tasks; choose another algorithm or preset")
    if declared(tasks, "uses_task_loss", False) and not spec.cls.accepts_task_losses:
        raise ConfigError(f"{spec.name} trains on supervised (x, y) task batches, but the {cfg.task.family} "
                          f"family's tasks come with their own task loss; use maml, anil or metasgd")
    settings = spec.settings_from(cfg.algo)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg, tasks, encoder_only=spec.cls.encoder_only)
        algo = spec.cls.from_settings(model, tasks, settings)   # e.g. a classifier initialised here too
    if cfg.algo.safeguard:
        if not algo.supports_safeguard:
            raise ConfigError(f"algo.safeguard applies to algorithms that adapt by inner gradient steps of the "
                              f"functional core; {spec.name} adapts its own way, so set algo.safeguard=false")
        if declared(tasks, "uses_task_loss", False):
            raise ConfigError(f"algo.safeguard keeps only inner steps that lower a supervised support loss; the "
                              f"{cfg.task.family} family's tasks come with their own task loss, so set "
                              f"algo.safeguard=false")
        algo.safeguard = True
    return algo


def test_ways(cfg: Config) -> int:
    """Ways at test: ``eval.ways`` for encoder-only algorithms (ProtoNets train with more ways
    than they test with), else the training ways (the model's head has that many outputs)."""
    ways = cfg.eval.ways if cfg.eval.ways is not None else cfg.task.ways
    if ways != cfg.task.ways and not get_spec(cfg.algo.name).cls.encoder_only:
        raise ConfigError(f"eval.ways={ways} but {cfg.algo.name}'s model has a {cfg.task.ways}-way head; only "
                          f"algorithms whose model has no head (ProtoNets, transfer) can test with other ways")
    return ways


def build_trainer(cfg: Config, out: Any, progress: bool = True, algo_name: str | None = None,
                  dist: DistContext | None = None, started: float | None = None) -> Trainer:
    """The model, algorithm, task families (train and validation) and trainer of ``cfg``;
    ``started`` (``time.perf_counter()``, default: now) is when the command began, from which
    ``train.time_limit`` counts."""
    started = time.perf_counter() if started is None else started
    spec = get_spec(algo_name or cfg.algo.name)
    if not spec.cls.trainable:
        raise ConfigError(f"{spec.name} has nothing to meta-train; add it to a comparison with "
                          f"'metalearn compare RUN ... --scratch'")
    if cfg.train.cuda_graph:   # said before any data is read
        from .cuda_graph import check_graphable
        check_graphable(spec.name, spec.cls.graphable)
    tasks = build_tasks(cfg, "train")
    val_cfg = copy.deepcopy(cfg)  # validate as we test (ProtoNets train with more ways)
    if spec.cls.encoder_only and cfg.eval.ways is not None:
        val_cfg.task.ways = cfg.eval.ways
    test_cfg = copy.deepcopy(val_cfg)
    try:
        val = build_tasks(val_cfg, "validation")
    except ConfigError as exc:
        if cfg.task.episodes == "random":
            raise
        # a validation split whose groups are too small for grouped episodes (Lake's 100 held-out
        # background characters): validate on the usual episodes, and say so
        val_cfg.task.episodes = "random"
        val = build_tasks(val_cfg, "validation")
        print(f"note: validation uses {cfg.task.episodes} episodes where it can; here it cannot ({exc}), so it "
              f"uses random episodes", file=sys.stderr)
    # the test split as evaluate_run builds it: a class too small for its episodes fails now
    build_tasks(test_cfg, "test", shots=cfg.task.shots, queries=cfg.eval.queries)
    algo = build_algorithm(cfg, tasks, spec.name)
    t = cfg.train
    callbacks: list[Any] = []
    main_process = dist is None or dist.is_main
    if cfg.log.wandb and main_process:
        callbacks.append(WandbLogger(out, cfg.to_dict(), cfg.log.wandb_project, t.log_every))
    if cfg.log.mlflow and main_process:
        callbacks.append(MLflowLogger(out, cfg.to_dict(), cfg.log.mlflow_uri, t.log_every))
    return Trainer(algo, tasks, out, steps=t.steps, meta_batch=t.meta_batch, lr=t.lr, seed=t.seed,
                   log_every=t.log_every, val_every=t.val_every, val_tasks=t.val_tasks,
                   ckpt_every=t.ckpt_every, device=t.device, progress=progress,
                   config=cfg.to_dict(), val_family=val, time_limit=t.time_limit, keep=t.keep,
                   optimizer=t.optimizer, lr_schedule=t.lr_schedule, min_lr=t.min_lr, dist=dist,
                   cuda_graph=t.cuda_graph, callbacks=callbacks, started=started)
