"""Named random streams: training tasks, validation tasks and test tasks never share a seed."""
from __future__ import annotations

import hashlib

import torch


def stream_seed(stream: str, seed: int) -> int:
    """A 62-bit seed for the named ``stream`` derived from the user's ``seed``."""
    digest = hashlib.sha256(f"metalearn:{stream}:{seed}".encode()).hexdigest()
    return int(digest[:15], 16)


def generator(stream: str, seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for the named stream."""
    return torch.Generator().manual_seed(stream_seed(stream, seed))
