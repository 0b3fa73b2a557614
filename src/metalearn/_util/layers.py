"""The package's import layers, lowest first: a module imports its own layer and the ones below,
never one above. ``tests/test_layers.py`` checks the source against this list, and the design page
of the documentation is generated from it."""
from __future__ import annotations

LAYERS: list[list[str]] = [
    ["errors", "protocols", "batch", "_util", "_version"],
    ["functional"],
    ["models", "data"],
    ["tasks"],
    ["algorithms"],
    ["config", "runs"],
    ["integrations", "training"],
    ["evaluation"],
    ["report", "tune", "federated", "learned_optim"],
    ["cli", "__init__", "__main__"],
]
