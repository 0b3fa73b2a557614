"""Build the task family, model and algorithm that a ``Config`` describes (the CLI's edge)."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .algorithms import ANIL, MAML, Algorithm, MAMLpp, Reptile, Transfer, get_algorithm
from .config import Config
from .errors import ConfigError
from .functional import ENGINES, MODES
from .models import conv4, mlp
from .models.lstm_optimizer import LSTMOptimizerNet
from .tasks.optimizees import MLPProblems, QuadraticProblems
from .models.conv4 import min_image_size as conv4_min_image_size
from .tasks import get_task_family
from .train import Trainer

MODELS = ("conv4", "lstm_optimizer", "mlp")
L2L_FAMILIES = ("quadratic", "mnist_mlp")


def build_tasks(cfg: Config, split: str = "train", shots: int | None = None,
                queries: int | None = None, family: str | None = None, horizon: int | None = None) -> Any:
    """The task family of ``cfg.task`` for ``split`` (train, validation or test); ``shots``,
    ``queries``, ``family`` and ``horizon`` override the config (e.g. to test on another dataset)."""
    t = cfg.task
    family = family or t.family
    if family == "quadratic":
        return QuadraticProblems(t.dim, horizon or t.horizon)
    if family == "mnist_mlp":
        return MLPProblems(t.mlp_hidden, t.mlp_activation, t.minibatch, horizon or t.horizon, t.data_dir)
    factory = get_task_family(family)
    k = t.shots if shots is None else shots
    q = queries if queries is not None else (t.queries if t.queries is not None and shots is None else k)
    if family == "sinusoid":
        for name in ("amplitude", "phase", "x_range"):
            if len(getattr(t, name)) != 2:
                raise ConfigError(f"task.{name} must be [low, high], got {getattr(t, name)}")
        return factory(shots=k, queries=q, amplitude=tuple(t.amplitude), phase=tuple(t.phase),
                       x_range=tuple(t.x_range))
    return factory(split, t.ways, k, q, image_size=t.image_size, data_dir=t.data_dir,
                   protocol=t.protocol, rotations=t.rotations, classes=t.classes, channels=t.channels)


def check_conv4_image_size(size: int) -> None:
    """A ConfigError naming the smallest size when Conv4 cannot take ``size`` x ``size`` images."""
    smallest = conv4_min_image_size()
    if size < smallest:
        raise ConfigError(f"task.image_size={size} is too small for the conv4 model: its max-pools need "
                          f"images of at least {smallest}x{smallest}; use --set task.image_size={smallest} "
                          f"or larger")


def build_model(cfg: Config, tasks: Any, encoder_only: bool = False) -> nn.Module:
    """The model of ``cfg.model`` for ``tasks``; ``encoder_only`` drops the classifier head
    (ProtoNets, transfer) so the model outputs embeddings."""
    m = cfg.model
    if m.name not in MODELS:
        raise ConfigError(f"unknown model {m.name!r}; choose one of: {', '.join(MODELS)}")
    if (m.name == "lstm_optimizer") != (cfg.task.family in L2L_FAMILIES):
        raise ConfigError("the lstm_optimizer model goes with the quadratic and mnist_mlp task families "
                          "(presets l2l-quadratic, l2l-mnist), and only there")
    if m.name == "lstm_optimizer":
        return LSTMOptimizerNet(m.lstm_hidden, m.preprocess_p, m.output_scale)
    if m.name == "conv4":
        c, h, w = tasks.input_shape
        if h != w:
            raise ConfigError(f"conv4 expects square images, got {h}x{w}")
        if m.width <= 0:
            raise ConfigError(f"model.width must be positive, got {m.width}")
        check_conv4_image_size(h)
        return conv4(c, 0 if encoder_only else tasks.output_dim, m.width, h)
    if any(h <= 0 for h in m.hidden):
        raise ConfigError(f"model.hidden sizes must be positive, got {m.hidden}")
    if len(tasks.input_shape) != 1:
        raise ConfigError(f"the mlp model takes flat inputs but {cfg.task.family} gives "
                          f"{tuple(tasks.input_shape)}; use --set model.name=conv4")
    try:
        return mlp(int(tasks.input_shape[0]), m.hidden, tasks.output_dim, m.activation)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None


ENCODER_ONLY = ("protonet", "transfer")


def build_algorithm(cfg: Config, tasks: Any, name: str | None = None) -> Algorithm:
    """Model and algorithm, with the model initialised from ``cfg.train.seed``."""
    a = cfg.algo
    name = name or a.name
    cls = get_algorithm(name)
    if a.mode not in MODES:
        raise ConfigError(f"unknown algo.mode {a.mode!r}; choose one of: {', '.join(MODES)}")
    if a.engine not in ENGINES:
        raise ConfigError(f"unknown algo.engine {a.engine!r}; choose one of: {', '.join(ENGINES)}")
    if (name == "l2l") != (cfg.task.family in L2L_FAMILIES):
        raise ConfigError("the l2l algorithm meta-trains an optimizer on the quadratic or mnist_mlp task "
                          "families (presets l2l-quadratic, l2l-mnist); other algorithms need other tasks")
    if name in ENCODER_ONLY and tasks.loss != "cross_entropy":
        raise ConfigError(f"{name} is for classification; use it with omniglot, mnist or image_folder tasks")
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, tasks, encoder_only=name in ENCODER_ONLY)
    if name == "l2l":
        return _safeguarded(cls(model, family=tasks, horizon=cfg.task.horizon, unroll=cfg.task.unroll,
                                mode=a.mode, objective=a.objective), cfg)
    kwargs: dict[str, Any] = dict(inner_lr=a.inner_lr, inner_steps=a.inner_steps, loss=tasks.loss, engine=a.engine)
    if issubclass(cls, MAML) or cls is MAMLpp:
        kwargs["mode"] = a.mode
    if cls is ANIL:
        kwargs["head"] = a.head
    if cls is MAMLpp:
        kwargs.update(msl_steps=a.msl_steps, first_order_steps=a.first_order_steps,
                      multi_step_loss=a.multi_step_loss, learn_lrs=a.learn_lrs, per_step_bn=a.per_step_bn)
    if cls is Reptile:
        if a.inner_optimizer not in ("sgd", "adam"):
            raise ConfigError(f"unknown algo.inner_optimizer {a.inner_optimizer!r}; choose sgd or adam")
        kwargs["inner_optimizer"] = a.inner_optimizer
    if cls is Transfer:
        if a.classifier not in ("cosine", "linear"):
            raise ConfigError(f"unknown algo.classifier {a.classifier!r}; choose cosine or linear")
        with torch.no_grad():
            feature_dim = model(torch.zeros(2, *tasks.input_shape)).flatten(1).shape[1]
        kwargs.update(num_classes=tasks.num_classes, feature_dim=feature_dim, head=a.classifier)
    return _safeguarded(cls(model, **kwargs), cfg)


def _safeguarded(algo: Algorithm, cfg: Config) -> Algorithm:
    """``algo`` with ``cfg.algo.safeguard`` applied (an error for algorithms it cannot apply to)."""
    if cfg.algo.safeguard:
        if not algo.supports_safeguard:
            raise ConfigError(f"algo.safeguard applies to algorithms that adapt by inner gradient steps of the "
                              f"functional core; {algo.name} adapts its own way, so set algo.safeguard=false")
        algo.safeguard = True
    return algo


def build_trainer(cfg: Config, out: Any, progress: bool = True, algo_name: str | None = None,
                  dist: Any = None) -> Trainer:
    """The model, algorithm, task families (train and validation) and trainer of ``cfg``."""
    tasks = build_tasks(cfg, "train")
    val = None
    if cfg.task.family not in ("sinusoid", *L2L_FAMILIES):
        val_cfg = copy.deepcopy(cfg)  # validate as we test (ProtoNets train with more ways)
        if (algo_name or cfg.algo.name) in ENCODER_ONLY and cfg.eval.ways is not None:
            val_cfg.task.ways = cfg.eval.ways
        val = build_tasks(val_cfg, "validation")
        # the test split as evaluate_run builds it: a class too small for its episodes fails now
        build_tasks(val_cfg, "test", shots=cfg.task.shots, queries=cfg.eval.queries)
    algo = build_algorithm(cfg, tasks, algo_name)
    t = cfg.train
    return Trainer(algo, tasks, out, steps=t.steps, meta_batch=t.meta_batch, lr=t.lr, seed=t.seed,
                   log_every=t.log_every, val_every=t.val_every, val_tasks=t.val_tasks,
                   ckpt_every=t.ckpt_every, device=t.device, progress=progress,
                   config=cfg.to_dict(), val_family=val, time_limit=t.time_limit, keep=t.keep,
                   optimizer=t.optimizer, lr_schedule=t.lr_schedule, min_lr=t.min_lr, dist=dist,
                   cuda_graph=t.cuda_graph)
