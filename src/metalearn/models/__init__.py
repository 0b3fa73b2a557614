"""Bundled models. They are conveniences: any ``nn.Module`` works with every algorithm."""
from .conv4 import Conv4, conv4
from .cpu_layout import channels_last, conv2d_nhwc
from .mlp import WideMLP, mlp
from .policies import CategoricalPolicy, GaussianPolicy
from .registry import ModelEntry, get_model, list_models, register_model
from .ridge import fit_ridge, predict_ridge

__all__ = ["Conv4", "ModelEntry", "get_model", "list_models", "register_model", "channels_last", "conv2d_nhwc",
           "conv4", "fit_ridge", "mlp", "predict_ridge", "WideMLP", "GaussianPolicy", "CategoricalPolicy"]
