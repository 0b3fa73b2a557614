"""Progress reported from inside a long computation (an adaptation curve's inner steps) to a bar
that the caller owns, without changing what is computed: the computation calls
:func:`advance` with the fraction of its work just done; outside :func:`reporting` that does nothing.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_SINK: ContextVar[Callable[[float], None] | None] = ContextVar("metalearn_progress", default=None)


@contextlib.contextmanager
def reporting(sink: Callable[[float], None]) -> Iterator[None]:
    """Within the block, ``advance(fraction)`` calls ``sink(fraction)``."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def advance(fraction: float) -> None:
    """Report that ``fraction`` (of 1) of the current computation is done."""
    sink = _SINK.get()
    if sink is not None:
        sink(fraction)


def counted(call: Callable[[], T], total: float, bar: Any | None) -> T:
    """``call()``, moving ``bar`` (a tqdm) by ``total`` over it as the call reports :func:`advance`.

    The bar is topped up to ``total`` when the call returns, so a computation that reports less (or
    nothing) still counts fully; what is computed does not depend on the bar. Adaptation curves are
    scored this way in one call on the whole batch: splitting a batch into parts is not neutral (a
    batched convolution's last bits depend on the batch, and ten inner steps amplify them into
    flipped predictions; an environment's batched collection draws differently).
    """
    if bar is None:
        return call()
    moved = 0.0

    def move(fraction: float) -> None:
        nonlocal moved
        step = min(total - moved, total * fraction)
        if step > 0:
            moved += step
            bar.update(step)

    with reporting(move):
        result = call()
    if total - moved > 0:
        bar.update(total - moved)
    return result
