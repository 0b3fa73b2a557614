"""The config's schema: one dataclass per section (task, model, algo, train, eval, log, fed), whose
fields and types are the valid ``section.key`` names and values."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

from ..algorithms.registry import algorithm_options, get_spec
from ..errors import ConfigError


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
