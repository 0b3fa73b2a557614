"""Bundled models. They are conveniences: any ``nn.Module`` works with every algorithm."""
from .conv4 import Conv4, conv4
from .cpu_layout import channels_last, conv2d_nhwc
from .mlp import WideMLP, mlp
from .policies import CategoricalPolicy, GaussianPolicy
from .registry import ModelEntry, get_model, list_models, register_model
from .ridge import fit_ridge, predict_ridge

__all__ = [
           "CategoricalPolicy",
           "Conv4",
           "GaussianPolicy",
           "ModelEntry",
           "WideMLP",
           "channels_last",
           "conv2d_nhwc",
           "conv4",
           "fit_ridge",
           "get_model",
           "list_models",
           "mlp",
           "predict_ridge",
           "register_model",
]
