"""Registry of models by name, for the CLI and configs: each entry builds the model from a
config's ``model`` section for a task family, and declares the kinds of task it serves. Any
``nn.Module`` works from the Python API; these are the ones a config can name."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .._util.registry import Registry
from .._util.settings import Option, keys_of, options_of, settings_from
from ..errors import ConfigError
from ..protocols import ShapedFamily, TaskFamily
from .conv4 import conv4, min_image_size
from .lstm_optimizer import LSTMOptimizerNet
from .mlp import WideMLP, mlp
from .policies import CategoricalPolicy, GaussianPolicy

Builder = Callable[[Any, Any, bool], nn.Module]   # (model config, task family, encoder_only) -> model


@dataclass
class Conv4Settings:
    """conv4 (Vinyals et al., 2016; Finn et al., 2017): ``width`` filters in each of its four blocks."""

    width: int = 64


@dataclass
class MLPSettings:
    """The MLP: ``hidden`` layer sizes, ``activation`` between them (relu, tanh, sigmoid), and
    ``wide``, a linear map of the raw inputs added to the output."""

    hidden: list[int] = field(default_factory=lambda: [40, 40])
    activation: str = "relu"
    wide: bool = False


@dataclass
class LSTMOptimizerSettings:
    """The learned optimizer of Andrychowicz et al. (2016): ``lstm_hidden`` units per layer, the
    gradient preprocessing's ``preprocess_p`` and the update's ``output_scale``."""

    lstm_hidden: int = 20
    preprocess_p: float = 10.0
    output_scale: float = 0.1


@dataclass
class PolicySettings:
    """A policy network: ``hidden`` sizes, ``activation``, and a Gaussian policy's initial standard
    deviation ``init_std``."""

    hidden: list[int] = field(default_factory=lambda: [40, 40])
    activation: str = "relu"
    init_std: float = 1.0


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, the task kinds it serves, a config check and its ``model.*`` keys."""
    name: str
    build: Builder
    kinds: tuple[str, ...]
    # checks of the config's task section that need no data (run at config validation)
    check: Callable[[Any], None] | None = None
    settings: type | None = None   # the dataclass of its own ``model.*`` keys

    def model_keys(self) -> list[str]:
        return keys_of(self.settings)

    def settings_from(self, model: Any) -> Any:
        """Its settings from a config's ``model`` section (running the dataclass's checks), or None."""
        return settings_from(self.settings, model)


_MODELS: Registry[ModelEntry] = Registry("model")


def register_model(name: str, build: Builder, kinds: tuple[str, ...],
                   check: Callable[[Any], None] | None = None, settings: type | None = None) -> None:
    """Register a model builder under ``name`` for the task ``kinds`` it serves (``model.name`` selects it)."""
    _MODELS.add(name, ModelEntry(name, build, kinds, check, settings))


def model_options() -> dict[str, Option]:
    """Every model-specific ``model.*`` key of the registered models, by key."""
    return options_of(e.settings for e in _MODELS.values() if e.settings is not None)


def models_with_key(key: str) -> list[str]:
    """The models that declare the ``model.KEY`` setting ``key`` (for messages naming its owners)."""
    return [e.name for e in _MODELS.values() if key in e.model_keys()]


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return _MODELS.names()


def get_model(name: str) -> ModelEntry:
    """The registry entry of model ``name``; an unknown name lists the valid ones."""
    return _MODELS.get(name)


def check_conv4_image_size(size: int) -> None:
    """A ConfigError naming the smallest size when Conv4 cannot take ``size`` x ``size`` images."""
    smallest = min_image_size()
    if size < smallest:
        raise ConfigError(f"task.image_size={size} is too small for the conv4 model: its max-pools need "
                          f"images of at least {smallest}x{smallest}; use --set task.image_size={smallest} "
                          f"or larger")


def _conv4(m: Any, family: ShapedFamily, encoder_only: bool) -> nn.Module:
    shape = tuple(family.input_shape)
    if len(shape) != 3:
        raise ConfigError(f"the conv4 model takes images but the task family gives inputs of shape {shape}; "
                          f"use --set model.name=mlp")
    c, h, w = shape
    if h != w:
        raise ConfigError(f"conv4 expects square images, got {h}x{w}")
    if m.width <= 0:
        raise ConfigError(f"model.width must be positive, got {m.width}")
    check_conv4_image_size(h)
    return conv4(c, 0 if encoder_only else family.output_dim, m.width, h)


def _mlp(m: Any, family: ShapedFamily, encoder_only: bool) -> nn.Module:
    if any(h <= 0 for h in m.hidden):
        raise ConfigError(f"model.hidden sizes must be positive, got {m.hidden}")
    if len(family.input_shape) != 1:
        raise ConfigError(f"the mlp model takes flat inputs but the task family gives inputs of shape "
                          f"{tuple(family.input_shape)}; use --set model.name=conv4")
    try:
        if m.wide:
            return WideMLP(int(family.input_shape[0]), m.hidden, family.output_dim, m.activation)
        return mlp(int(family.input_shape[0]), m.hidden, family.output_dim, m.activation)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None


def _lstm_optimizer(m: Any, family: TaskFamily, encoder_only: bool) -> nn.Module:
    return LSTMOptimizerNet(m.lstm_hidden, m.preprocess_p, m.output_scale)


def _policy(m: Any, family: ShapedFamily, encoder_only: bool, space: str | None = None) -> nn.Module:
    """A Gaussian policy for continuous actions, a categorical one for discrete actions; ``space``
    insists on one (``gaussian_policy``, ``categorical_policy``)."""
    actual = getattr(family, "action_space", None)
    if space is not None and actual != space:
        names = {"continuous": "gaussian_policy", "discrete": "categorical_policy"}
        raise ConfigError(f"the {names[space]} model is for {space} actions but this environment's actions are "
                          f"{actual}; use --set model.name={names.get(actual or '', 'policy')} (or model.name=policy)")
    if any(h <= 0 for h in m.hidden) or m.init_std <= 0:
        raise ConfigError(f"model.hidden sizes and model.init_std must be positive, got {m.hidden} and {m.init_std}")
    obs = int(family.input_shape[0])
    try:
        if actual == "discrete":
            return CategoricalPolicy(obs, family.output_dim, m.hidden, m.activation)
        return GaussianPolicy(obs, family.output_dim, m.hidden, m.activation, m.init_std)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None


register_model("conv4", _conv4, kinds=("regression", "classification"),
               check=lambda task: check_conv4_image_size(task.image_size), settings=Conv4Settings)
register_model("mlp", _mlp, kinds=("regression", "classification"), settings=MLPSettings)
register_model("lstm_optimizer", _lstm_optimizer, kinds=("optimizer",), settings=LSTMOptimizerSettings)
register_model("policy", _policy, kinds=("reinforcement",), settings=PolicySettings)
register_model("gaussian_policy", lambda m, f, e: _policy(m, f, e, "continuous"), kinds=("reinforcement",),
               settings=PolicySettings)
register_model("categorical_policy", lambda m, f, e: _policy(m, f, e, "discrete"), kinds=("reinforcement",),
               settings=PolicySettings)
