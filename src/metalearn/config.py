"""Typed configuration: dataclass defaults, then a YAML preset or file, then ``key=value`` overrides.

Config lives at the CLI edge; library classes take plain arguments. Unknown keys and wrong types
are rejected with the valid choices named.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .algorithms.registry import algorithm_options, get_spec
from .errors import ConfigError
from .models.registry import get_model


@dataclass
class TaskConfig:
    family: str = "sinusoid"
    shots: int = 10
    queries: typing.Optional[int] = None     # per class for image tasks; None: same as shots
    # few-shot image families (omniglot, mnist, image_folder)
    ways: int = 5
    image_size: int = 28
    protocol: str = "maml"                   # omniglot: maml or lake
    episodes: str = "random"                 # few-shot images: random classes, or within_alphabet (one alphabet each)
    rotations: bool = True                   # omniglot: rotated training characters as new classes
    augment: float = 0.0                     # few-shot training images: random affine distortions (1: Koch et al.'s)
    classes: typing.List[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])  # mnist training digits
    channels: int = 1                        # image_folder: 1 (grey) or 3 (RGB)
    data_dir: typing.Optional[str] = None    # local copy of the data; default $METALEARN_DATA_DIR
    # learned-optimizer problems (quadratic, mnist_mlp)
    horizon: int = 100                       # optimisation steps per problem
    unroll: int = 20                         # truncated back-propagation length
    dim: int = 10                            # quadratic dimension
    mlp_hidden: typing.List[int] = field(default_factory=lambda: [20])
    mlp_activation: str = "sigmoid"
    minibatch: int = 128
    # sinusoid
    amplitude: typing.List[float] = field(default_factory=lambda: [0.1, 5.0])
    phase: typing.List[float] = field(default_factory=lambda: [0.0, 3.141592653589793])
    x_range: typing.List[float] = field(default_factory=lambda: [-5.0, 5.0])
    # grouped tables (table, glucose, remifentanil): one task per group of rows
    data: typing.Optional[str] = None        # table: a CSV or Parquet file
    group: typing.Optional[str] = None       # the column naming each row's group (patient, site, ...)
    target: typing.Optional[str] = None      # the column to predict
    features: typing.Optional[typing.List[str]] = None   # input columns; None: every other column
    time: typing.Optional[str] = None        # support rows come before query rows in this column's order
    categorical: typing.List[str] = field(default_factory=list)   # one-hot columns (text columns are by default)
    stratify: typing.Optional[str] = None    # split groups in proportion within each value of this column
    target_type: str = "auto"                # auto (text: classification), regression or classification
    residual_of: typing.Optional[str] = None  # regression: predict target minus this column
    split: typing.List[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])  # train / validation / test groups
    split_seed: int = 0
    support_until: typing.Optional[float] = None   # support rows have time < this, query rows >= it
    # reinforcement learning (nav2d, ...): shots = episodes per task before adaptation, queries = after;
    # horizon = steps per episode
    gamma: float = 0.99                      # discount of the returns behind the advantages
    gae_lambda: float = 1.0                  # generalised advantage estimation's lambda (1: Monte-Carlo)
    vector: str = "sync"                     # gymnasium vector environments: sync, or async (worker processes)
    workers: int = 0                         # async: worker processes (0: one per core, shared with torchrun's)


@dataclass
class ModelConfig:
    name: str = "mlp"
    hidden: typing.List[int] = field(default_factory=lambda: [40, 40])   # mlp
    activation: str = "relu"                                             # mlp
    wide: bool = False                       # mlp: add a linear map of the raw inputs to the output
    width: int = 64                                                      # conv4 filters
    lstm_hidden: int = 20                                                # lstm_optimizer
    preprocess_p: float = 10.0                                           # lstm_optimizer
    output_scale: float = 0.1                                            # lstm_optimizer
    init_std: float = 1.0                    # policy: initial standard deviation of a Gaussian policy


@dataclass
class AlgoConfig:
    """The ``algo`` section: the keys every algorithm has, plus ``options``, the keys that
    algorithms declare in their settings dataclasses (``algo.msl_steps`` for MAML++, ...). A
    config file writes them all flat under ``algo``; an option not set reads as its default."""

    name: str = "maml"
    inner_lr: float = 0.01
    inner_steps: int = 1
    mode: str = "second_order"
    engine: str = "auto"
    safeguard: bool = False                  # test-time adaptation keeps only steps that lower the support loss
    options: typing.Dict[str, typing.Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:  # only for names that are not fields: the options
        if key.startswith("__"):
            raise AttributeError(key)
        options = self.__dict__.get("options", {})
        if key in options:
            return options[key]
        declared = algorithm_options().get(key)
        if declared is None:
            raise AttributeError(f"AlgoConfig has no key {key!r}")
        return declared.default

    def resolved(self) -> dict[str, Any]:
        """The section as a config file writes it: the common keys, the chosen algorithm's settings
        (defaults filled in) and any other option that was set."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "options"}
        try:
            settings = get_spec(self.name).settings
        except ConfigError:
            settings = None
        if settings is not None:
            for f in dataclasses.fields(settings):
                out.setdefault(f.name, getattr(self, f.name))
        out.update(self.options)
        return out


@dataclass
class TrainConfig:
    steps: int = 70000
    meta_batch: int = 25
    lr: float = 0.001
    seed: int = 0
    log_every: int = 100
    val_every: int = 1000
    val_tasks: int = 300
    ckpt_every: int = 1000
    threads: int = 1
    device: str = "cpu"
    optimizer: str = "adam"                     # outer optimizer: adam or sgd
    lr_schedule: str = "constant"               # constant, cosine (MAML++) or linear (Reptile)
    min_lr: float = 0.0                         # end of the cosine or linear schedule
    time_limit: typing.Optional[float] = None   # minutes of meta-training, then stop (resumable)
    keep: typing.List[int] = field(default_factory=list)  # also keep checkpoints/step-N.pt at these steps
    cuda_graph: bool = False     # CUDA only: capture the meta-step once as a CUDA graph and replay it


@dataclass
class EvalConfig:
    tasks: int = 1000
    steps: typing.List[int] = field(default_factory=lambda: [1, 2, 5, 10])
    seed: int = 12345
    queries: typing.Optional[int] = None     # query examples (per class) at test; None: as in training
    ways: typing.Optional[int] = None        # ways at test (protonet, transfer); None: as in training
    support_sizes: typing.List[int] = field(default_factory=list)  # grouped tables: support rows; [] = task.shots
    repeats: int = 10                        # grouped tables: support draws per held-out group and size


@dataclass
class LogConfig:
    wandb: bool = False                      # also log to Weights & Biases (WANDB_MODE=offline works)
    wandb_project: str = "metalearn"
    mlflow: bool = False                     # also log to MLflow
    mlflow_uri: typing.Optional[str] = None  # tracking store; default $MLFLOW_TRACKING_URI or RUN/../mlflow.db


@dataclass
class FedConfig:
    """``metalearn federate``: federated meta-learning over clients (Omniglot alphabets, a table's groups)."""

    strategy: str = "fedmeta"                # fedmeta, perfedavg or fedavg_ft
    rounds: int = 100
    fraction: float = 0.2                    # share of the training clients sampled per round
    local_steps: int = 5                     # local (meta-)updates of a sampled client per round
    local_lr: float = 0.001                  # their step size (Adam; SGD for perfedavg)
    local_batch: int = 4                     # episodes per local meta-update (images per step for fedavg_ft: x32)
    client_seed: int = 0                     # which clients are held out
    split: typing.List[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])   # train / validation / test clients
    eval_every: int = 10                     # rounds between validations on the validation clients
    eval_episodes: int = 20                  # episodes per held-out client
    central: str = "updates"                  # the central reference: as many meta-updates, or as many meta-steps
    nodes: int = 0                           # deployed: SuperNodes to wait for first (0: one per training client)


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    fed: FedConfig = field(default_factory=FedConfig)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["algo"] = self.algo.resolved()
        return out


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as ``{"section.key": value}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _type_name(tp: Any) -> str:
    """``float`` -> "a number", ``Optional[float]`` -> "a number or null", ``List[int]`` -> "a list of int"."""
    if tp is type(None):
        return "null"
    if tp is float:
        return "a number"
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(tp))
    if typing.get_origin(tp) in (list, typing.List):
        item = typing.get_args(tp)[0]
        return f"a list of {'numbers' if item is float else _type_name(item)}"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin in (list, typing.List):
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {'numbers' if item is float else _type_name(item)} "
                              f"such as [1, 2], got {value!r}")
        return [_coerce(v, item, key) for v in value]
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads 1e-3, 1E-3 and 1_000.5 as strings; take any float notation Python reads
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number such as 0.001 or 1e-3, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number such as 0.001 or 1e-3, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")


def _apply(obj: Any, data: dict[str, Any], prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj) if f.name != "options"]
    options = algorithm_options() if isinstance(obj, AlgoConfig) else {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key in options and key not in names:
            obj.options[key] = _coerce(value, options[key].type, full)
            options[key].owner(**{key: obj.options[key]})  # the declaring algorithm checks the value
            continue
        if key not in names:
            raise ConfigError(f"unknown config key {full!r}; valid keys here: "
                              f"{', '.join(prefix + n for n in [*names, *sorted(options)])}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                keys = ", ".join(f.name for f in dataclasses.fields(current))
                raise ConfigError(f"{full}: expected a section of keys ({keys}), got {value!r}")
            _apply(current, value, prefix=f"{full}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], full))


def config_from_dict(data: dict[str, Any]) -> Config:
    """A ``Config`` from a nested dict (a YAML file's contents), checked key by key."""
    cfg = Config()
    if not isinstance(data, dict):
        raise ConfigError("a config must be a mapping of sections (task, model, algo, train, eval), "
                          f"got {type(data).__name__}")
    _apply(cfg, data)
    return cfg


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.steps=100"`` -> ``(["train", "steps"], 100)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value (e.g. train.steps=1000), got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``key=value`` overrides in order; unknown keys and wrong types raise ``ConfigError``."""
    for text in overrides:
        path, value = parse_override(text)
        nested: Any = value
        for part in reversed(path):
            nested = {part: nested}
        _apply(cfg, nested)
    return cfg


def list_presets() -> list[str]:
    files = resources.files("metalearn") / "presets"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> Config:
    """A named preset from ``metalearn/presets``, or a path to a YAML file."""
    path = Path(name)
    if name.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file {name} does not exist")
        text = path.read_text()
    else:
        res = resources.files("metalearn") / "presets" / f"{name}.yaml"
        if not res.is_file():
            raise ConfigError(f"unknown preset or task family {name!r}; choose one of: {', '.join(list_presets())} "
                              f"(or give a path to a YAML config file)")
        text = res.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {name} is not valid YAML: {exc}") from None
    return config_from_dict(data)


def _is_float_type(tp: Any) -> bool:
    """Whether the annotation ``tp`` holds floats: ``float``, ``Optional[float]`` or ``List[float]``."""
    if tp is float:
        return True
    return any(_is_float_type(arg) for arg in typing.get_args(tp) if arg is not type(None))


def float_fields(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of every float-typed field of the config dataclass ``obj``, nested
    sections included, read from the dataclasses' annotations."""
    hints = typing.get_type_hints(type(obj))
    found: list[tuple[str, Any]] = []
    for f in dataclasses.fields(obj):
        if f.name == "options":  # the algorithm-specific keys, typed by the algorithms' settings
            found += [(f"{prefix}{key}", getattr(obj, key)) for key, opt in algorithm_options().items()
                      if _is_float_type(opt.type)]
            continue
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            found += float_fields(value, f"{prefix}{f.name}.")
        elif _is_float_type(hints[f.name]):
            found.append((f"{prefix}{f.name}", value))
    return found


# float keys that must be > 0 (the rest must be finite; train.min_lr also >= 0)
POSITIVE_FLOATS = ("train.lr", "algo.inner_lr", "train.time_limit", "model.preprocess_p", "model.output_scale")


def _check_floats(cfg: Config) -> None:
    """Every float of ``cfg`` is finite (no nan, inf or -inf), and in range where it has one."""
    defaults = dict(float_fields(Config()))
    for key, value in float_fields(cfg):
        if value is None:  # Optional[float]: null means "none" (train.time_limit)
            continue
        example = defaults.get(key)
        if isinstance(example, list):
            example = "[" + ",".join(f"{v:g}" for v in example) + "]"
        fix = f"use e.g. --set {key}={example if example is not None else 60}"
        if key == "train.time_limit":
            fix += " (minutes), or null for no limit"
        if isinstance(value, list):
            if not all(math.isfinite(v) for v in value):
                raise ConfigError(f"{key} must hold finite numbers, got {value}; {fix}")
        elif key in POSITIVE_FLOATS and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{key} must be a finite positive number, got {value}; {fix}")
        elif key == "train.min_lr" and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{key} must be a finite number >= 0, got {value}; {fix}")
        elif not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value}; {fix}")


EPISODES = ("random", "within_alphabet")


def validate(cfg: Config) -> Config:
    """Range checks that types alone cannot express."""
    t = cfg.train
    for key in ("steps", "meta_batch", "log_every", "val_every", "val_tasks", "ckpt_every", "threads"):
        if getattr(t, key) <= 0:
            raise ConfigError(f"train.{key} must be positive, got {getattr(t, key)}")
    _check_floats(cfg)
    if cfg.task.shots <= 0:
        raise ConfigError(f"task.shots must be positive, got {cfg.task.shots}; use --set task.shots=10")
    if cfg.task.queries is not None and cfg.task.queries <= 0:
        raise ConfigError(f"task.queries must be positive, got {cfg.task.queries}")
    if cfg.algo.inner_steps < 0:
        raise ConfigError(f"algo.inner_steps must be >= 0, got {cfg.algo.inner_steps}")
    if cfg.task.ways <= 0 or cfg.task.image_size <= 0:
        raise ConfigError("task.ways and task.image_size must be positive")
    if cfg.task.episodes not in EPISODES:
        raise ConfigError(f"unknown task.episodes {cfg.task.episodes!r}; choose one of: {', '.join(EPISODES)}")
    if cfg.task.channels not in (1, 3):
        raise ConfigError(f"task.channels must be 1 (grey) or 3 (RGB), got {cfg.task.channels}; "
                          f"use --set task.channels=1 or --set task.channels=3")
    model = get_model(cfg.model.name)
    if model.check is not None:
        model.check(cfg.task)
    if cfg.eval.tasks <= 0 or any(s < 0 for s in cfg.eval.steps):
        raise ConfigError("eval.tasks must be positive and eval.steps non-negative")
    check_device(t.device, "train.device")
    return cfg


def check_device(text: str, what: str = "--device") -> str:
    """``text`` if it names a device this machine has (cpu, cuda, cuda:N), else a ConfigError."""
    import torch
    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{what}={text!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{what}={text} but PyTorch sees no CUDA GPU on this machine; use cpu "
                              f"(or install a CUDA build of PyTorch)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{what}={text} but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return text
