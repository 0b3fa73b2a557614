"""The config's schema: one dataclass per section (task, model, algo, train, eval, log, fed), whose
fields and types are the valid ``section.key`` names and values."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

from .._util.settings import Option, options_of
from ..algorithms.registry import algorithm_options, get_spec
from ..errors import ConfigError
from ..models.registry import get_model, model_options, models_with_key
from ..tasks.registry import families_with_key, get_task_family, task_options

# the version of the config layout that Config.to_dict writes (a run's config.yaml); older run
# folders' configs are read through metalearn.config.migration.migrate_config
CONFIG_VERSION = 2


class OwnedKeys:
    """A config section whose keys, beyond its fields, belong to the registered thing it names
    (``task.family``, ``model.name``): those keys are kept in ``options``, read as the owner's
    defaults until set, and written by :meth:`resolved`. Setting another owner drops the keys set
    for the previous one that the new one does not declare (a preset's, when a run switches)."""

    _owner: typing.ClassVar[str]
    _what: typing.ClassVar[str]      # how messages name the owner's kind: "task family", "model"
    _fields: typing.ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def registered(cls, owner: str) -> Any:
        """The registry entry of ``owner``; an unknown one is the registry's ConfigError."""
        raise NotImplementedError

    @classmethod
    def declared_by(cls, owner: str) -> tuple[type | None, list[str]] | None:
        """The settings dataclass ``owner`` declares and its keys; None for an unknown owner."""
        raise NotImplementedError

    @classmethod
    def all_options(cls) -> dict[str, Option]:
        """Every owner's keys (the first declaration's type and default)."""
        raise NotImplementedError

    @classmethod
    def owners_of(cls, key: str) -> list[str]:
        """The registered owners that declare ``key``."""
        raise NotImplementedError

    @classmethod
    def owner_keys(cls, owner: str) -> list[str]:
        """The keys that ``owner`` declares ([] for an unknown one)."""
        declared = cls.declared_by(owner)
        return [] if declared is None else declared[1]

    @classmethod
    def owner_option(cls, owner: str, key: str) -> Option | None:
        declared = cls.declared_by(owner)
        if declared is None or declared[0] is None or key not in declared[1]:
            return None
        return options_of([declared[0]])[key]

    @classmethod
    def shared_keys(cls) -> list[str]:
        """The section's own fields: the keys every owner shares."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "options"]  # type: ignore[arg-type]

    @classmethod
    def keep_own_keys(cls, section: dict[str, Any]) -> dict[str, Any]:
        """A config file's section with only the shared keys and its owner's own (the version-1
        migration: version 1 wrote every owner's keys); unchanged for an unknown owner."""
        default = next(f.default for f in dataclasses.fields(cls) if f.name == cls._owner)  # type: ignore[arg-type]
        declared = cls.declared_by(section.get(cls._owner, default))
        if declared is None:
            return section   # reading the config will name the unknown owner
        keep = {*cls.shared_keys(), *declared[1]}
        return {k: v for k, v in section.items() if k in keep}

    def check_keys(self, prefix: str) -> None:
        """Every key that was set is one of the owner's own (a misplaced one names the owner, its
        keys and the owners that have it), and the owner's settings dataclass passes its checks."""
        owner = getattr(self, self._owner)
        declared = self.declared_by(owner)
        if declared is None:
            self.registered(owner)   # raises the registry's error, which names the valid choices
            raise ConfigError(f"unknown {self._what} {owner!r}")
        settings, own = declared
        short = self._what.split()[-1]
        for key in self.__dict__["options"]:
            if key not in own:
                valid = ", ".join(f"{prefix}{k}" for k in [*self.shared_keys(), *own])
                raise ConfigError(f"{prefix}{key} is not a key of the {owner} {self._what} (it belongs to "
                                  f"{', '.join(self.owners_of(key)) or f'no registered {short}'}); the {owner} "
                                  f"{short}'s keys: {valid}")
        if settings is not None:
            settings(**{key: getattr(self, key) for key in own})

    def __getattr__(self, key: str) -> Any:  # only for names that are not fields: the owner's keys
        if key.startswith("__"):
            raise AttributeError(key)
        options = self.__dict__.get("options", {})
        if key in options:
            return options[key]
        option = self.owner_option(self.__dict__.get(self._owner, ""), key) or self.all_options().get(key)
        if option is None:
            raise AttributeError(f"{type(self).__name__} has no key {key!r}")
        return option.fresh_default()

    def __setattr__(self, key: str, value: Any) -> None:
        if key == self._owner and "options" in self.__dict__ and value != self.__dict__.get(self._owner):
            keep = self.owner_keys(value)
            self.__dict__["options"] = {k: v for k, v in self.__dict__["options"].items() if k in keep}
        if key in type(self)._fields:
            object.__setattr__(self, key, value)
        else:  # an owner's key, e.g. test_cfg.task.ways = 20
            self.__dict__["options"][key] = value

    def resolved(self) -> dict[str, Any]:
        """The section as a config file writes it: the fields, the owner's keys (defaults filled
        in) and any other key that was set."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                               if f.name != "options"}
        for key in self.owner_keys(getattr(self, self._owner)):
            out[key] = getattr(self, key)
        out.update(self.__dict__["options"])
        return out


@dataclass
class TaskConfig(OwnedKeys):
    """The ``task`` section: the keys every family shares and means the same way, plus ``options``,
    the keys that the chosen family declares in its settings dataclass (``task.ways`` for the image
    families, ``task.horizon`` for the environment and optimizee families, ``task.data`` for a
    table, ...; see each family's settings). A config file writes them all flat under ``task``; a
    key not set reads as the family's default. Setting another ``family`` drops the keys set for
    the previous one that the new one does not declare (a preset's, when a run switches family)."""

    _owner: typing.ClassVar[str] = "family"
    _what: typing.ClassVar[str] = "task family"

    family: str = "sinusoid"
    shots: int = 10
    queries: int | None = None     # None: same as shots
    data_dir: str | None = None    # local copy of the data; default $METALEARN_DATA_DIR
    options: dict[str, typing.Any] = field(default_factory=dict)

    @classmethod
    def registered(cls, owner: str) -> Any:
        return get_task_family(owner)

    @classmethod
    def declared_by(cls, owner: str) -> tuple[type | None, list[str]] | None:
        try:
            entry = get_task_family(owner)
        except ConfigError:
            return None
        return entry.settings, entry.task_keys()

    @classmethod
    def all_options(cls) -> dict[str, Option]:
        return task_options()

    @classmethod
    def owners_of(cls, key: str) -> list[str]:
        return families_with_key(key)


TaskConfig._fields = frozenset(f.name for f in dataclasses.fields(TaskConfig))


@dataclass
class ModelConfig(OwnedKeys):
    """The ``model`` section: ``name`` plus ``options``, the keys the chosen model declares in its
    settings dataclass (``model.width`` for conv4, ``model.hidden`` for the MLP and the policies,
    ...; see :mod:`metalearn.models.registry`), read as its defaults until set."""

    _owner: typing.ClassVar[str] = "name"
    _what: typing.ClassVar[str] = "model"

    name: str = "mlp"
    options: dict[str, typing.Any] = field(default_factory=dict)

    @classmethod
    def registered(cls, owner: str) -> Any:
        return get_model(owner)

    @classmethod
    def declared_by(cls, owner: str) -> tuple[type | None, list[str]] | None:
        try:
            entry = get_model(owner)
        except ConfigError:
            return None
        return entry.settings, entry.model_keys()

    @classmethod
    def all_options(cls) -> dict[str, Option]:
        return model_options()

    @classmethod
    def owners_of(cls, key: str) -> list[str]:
        return models_with_key(key)


ModelConfig._fields = frozenset(f.name for f in dataclasses.fields(ModelConfig))


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
    options: dict[str, typing.Any] = field(default_factory=dict)

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
    """The ``train.*`` keys: meta-steps, meta-batch, the outer optimizer and its schedule, validation,
    checkpoints, threads, device and time limit.
    """
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
    time_limit: float | None = None   # minutes of wall time, final validation included, then stop (resumable)
    keep: list[int] = field(default_factory=list)  # also keep checkpoints/step-N.pt at these steps
    cuda_graph: bool = False     # CUDA only: capture the meta-step once as a CUDA graph and replay it


@dataclass
class EvalConfig:
    """The ``eval.*`` keys: held-out tasks, inner-step counts scored, the seed of the test stream and
    the test-time shape of the tasks (queries, ways).
    """
    tasks: int = 1000
    steps: list[int] = field(default_factory=lambda: [1, 2, 5, 10])
    seed: int = 12345
    queries: int | None = None     # query examples (per class) at test; None: as in training
    ways: int | None = None        # ways at test (protonet, transfer); None: as in training
    support_sizes: list[int] = field(default_factory=list)  # grouped tables: support rows; [] = task.shots
    repeats: int = 10                        # grouped tables: support draws per held-out group and size


@dataclass
class LogConfig:
    """The ``log.*`` keys: optional Weights & Biases and MLflow logging."""
    wandb: bool = False                      # also log to Weights & Biases (WANDB_MODE=offline works)
    wandb_project: str = "metalearn"
    mlflow: bool = False                     # also log to MLflow
    mlflow_uri: str | None = None  # tracking store; default $MLFLOW_TRACKING_URI or RUN/../mlflow.db


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
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])   # train / validation / test clients
    eval_every: int = 10                     # rounds between validations on the validation clients
    eval_episodes: int = 20                  # episodes per held-out client
    central: str = "updates"                  # the central reference: as many meta-updates, or as many meta-steps
    nodes: int = 0                           # deployed: SuperNodes to wait for first (0: one per training client)


@dataclass
class Config:
    """A whole run's configuration: ``task``, ``model``, ``algo``, ``train``, ``eval``, ``log`` and, for
    federated runs, ``fed``. Read with :func:`~metalearn.config.load_preset` and changed with
    ``--set section.key=value``; a run folder keeps it as ``config.yaml``.
    """
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    fed: FedConfig = field(default_factory=FedConfig)
    # what the run's task family fitted to its data (a table's encoder, group split and data file's
    # hash), read from the run folder's fitted.json with the config; never part of the config file
    fitted: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": CONFIG_VERSION}
        out.update(asdict(self))
        out.pop("fitted")
        out["task"] = self.task.resolved()
        out["model"] = self.model.resolved()
        out["algo"] = self.algo.resolved()
        return out
