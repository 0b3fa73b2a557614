"""Warnings said once per process: a command that builds the same family several times (train,
validation, test, then again to evaluate) tells the user each thing once."""
from __future__ import annotations

import warnings

_SAID: set[str] = set()


def warn_once(message: str, category: type[Warning] = UserWarning, stacklevel: int = 3) -> None:
    """``warnings.warn(message)``, unless this process has already said the same text."""
    if message in _SAID:
        return
    _SAID.add(message)
    warnings.warn(message, category, stacklevel=stacklevel)
