"""Bundled models. They are conveniences: any ``nn.Module`` works with every algorithm."""
from .mlp import mlp

__all__ = ["mlp"]
