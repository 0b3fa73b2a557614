"""Bundled models. They are conveniences: any ``nn.Module`` works with every algorithm."""
from .conv4 import Conv4, conv4
from .mlp import mlp

__all__ = ["Conv4", "conv4", "mlp"]
