"""ANIL: Raghu, Raghu, Bengio & Vinyals (2020), "Rapid Learning or Feature Reuse? Towards
Understanding the Effectiveness of MAML", ICLR. MAML whose inner loop adapts only the network's
head (its last layer with parameters); the body is meta-learned by the outer loop alone.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..base import ModeSettings
from .maml import MAML


@dataclass
class ANILSettings(ModeSettings):
    """The ``algo.*`` keys of ``anil``: MAML's and ``head``, the parameter-name prefix of the adapted head
    (default: the last layer).
    """
    head: str | None = None   # parameter-name prefix of the head (default: the last layer)


def head_parameter_names(model: nn.Module, head: str | None = None) -> list[str]:
    """Names of the head's parameters: those under the prefix ``head``; by default those under a
    child module named ``head`` when the model has one (the wide MLP's), else those of the last
    submodule (in registration order) that owns parameters directly."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if head is None and isinstance(getattr(model, "head", None), nn.Module):
        head = "head"
    if head is not None:
        chosen = [n for n in names if n == head or n.startswith(head + ".")]
        if not chosen:
            raise ValueError(f"no parameters under {head!r}; the model's parameters are {', '.join(names)}")
        return chosen
    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    last = owners[-1]
    prefix = next(n for n, m in model.named_modules() if m is last)
    return [n for n in names if n.rsplit(".", 1)[0] == prefix or (prefix == "" and "." not in n)]


class ANIL(MAML):
    """MAML with an inner loop over the head only (``head``: a parameter-name prefix)."""

    name = "anil"

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 mode: str = "second_order", loss: str = "mse", engine: str = "auto",
                 head: str | None = None) -> None:
        super().__init__(model, inner_lr, inner_steps, mode, loss, engine)
        self._fast = head_parameter_names(model, head)

    def fast_keys(self) -> list[str]:
        return self._fast
