"""Checkpoints: ``torch.save`` written atomically, loaded with ``weights_only=True`` (tensors and plain
containers, never pickled code), and weights loaded with a message that names both models."""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .._util.files import atomic_write_bytes
from ..errors import RunError, one_line

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    """``torch.save`` to memory, then an atomic write: never a half-written checkpoint."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load with ``weights_only=True`` (tensors and plain containers, never pickled code)."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # never relay PyTorch's hint to load with weights_only=False: that would run the file's code
        raise RunError(f"checkpoint {path} is corrupt, not a metalearn checkpoint, or unsafe to load (it "
                       f"is not made of tensors and plain containers only); it was not loaded. Use another "
                       f"checkpoint of the run or train again") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, TypeError) as exc:
        raise RunError(f"checkpoint {path} is corrupt or not a metalearn checkpoint ({one_line(exc)}); "
                       f"use another checkpoint of the run or train again") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model" not in state:
        raise RunError(f"checkpoint {path} is not a metalearn checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def load_weights(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: Path | str) -> None:
    """Load weights, turning a shape or key mismatch into a message that names both models."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    extra = sorted(set(state_dict) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and torch.is_tensor(own[k]) and torch.is_tensor(state_dict[k])
              and own[k].shape != state_dict[k].shape]
    if missing or extra or shapes:
        detail = "; ".join(filter(None, [
            f"missing {', '.join(missing[:4])}" if missing else "",
            f"unexpected {', '.join(extra[:4])}" if extra else "",
            "; ".join(shapes[:4])]))
        raise RunError(f"checkpoint {source} was saved from a different model ({detail}); "
                       f"use the config the checkpoint was trained with")
    module.load_state_dict(state_dict)
