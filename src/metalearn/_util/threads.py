"""Threads on a shared CPU: how busy the cores are now, and advice when a training would fight
other processes for them.

PyTorch's OpenMP threads spin-wait for each other at every parallel region. When another process
holds one of the cores, a thread of ours loses its core for whole time slices and the others wait
for it: on a 2-core machine a 2-thread Conv4 MAML step ran 4x slower beside one busy process (a
fair share would cost at most 2x), while one thread, or two with ``OMP_WAIT_POLICY=PASSIVE``, lost
almost nothing (``benchmarks/under_load.py``, README "Training on a shared machine").
"""
from __future__ import annotations

import os
import time


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores from ``/proc/stat``; None where there is no such file."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(interval: float = 0.3) -> float | None:
    """How many cores other processes keep busy, measured over ``interval`` seconds while this
    process sleeps; None where it cannot be measured (no ``/proc/stat``)."""
    a = _cpu_times()
    if a is None:
        return None
    time.sleep(interval)
    b = _cpu_times()
    if b is None or b[1] <= a[1]:
        return None
    return (os.cpu_count() or 1) * (b[0] - a[0]) / (b[1] - a[1])


def thread_advice(threads: int, busy: float | None, cores: int | None = None) -> str | None:
    """A one-line hint when ``threads`` plus the busy cores exceed the machine's cores, else None."""
    cores = cores or os.cpu_count() or 1
    if busy is None or threads <= 1 or busy < 0.5 or threads + busy <= cores + 0.25:
        return None
    free = max(1, round(cores - busy))
    return (f"note: other processes keep about {busy:.1f} of the {cores} cores busy; {threads} threads that "
            f"wait for each other can run several times slower there. Use --set train.threads={free}, or "
            f"start with OMP_WAIT_POLICY=PASSIVE in the environment (README: Training on a shared machine)")


def free_cores(busy: float | None, cores: int | None = None) -> int | None:
    """The cores other processes leave free (at least one), or None when unknown."""
    cores = cores or os.cpu_count() or 1
    return None if busy is None else max(1, min(cores, round(cores - busy)))


def choose_threads(configured: int, explicit: bool, busy: float | None, cores: int | None = None,
                   keep: str = "--set train.threads={n}") -> tuple[int, str | None]:
    """The thread count to run with, and a note to print (or None).

    A count the user gave on the command line (``explicit``) is kept, with the shared-machine
    advice when it would fight other processes for the cores. A preset's or a run's count is
    lowered to the cores free now (measured as ``busy``), and the note says so and how to keep it."""
    if explicit or configured <= 1:
        return configured, thread_advice(configured, busy, cores) if explicit else None
    free = free_cores(busy, cores)
    if free is None or free >= configured:
        return configured, None
    cores = cores or os.cpu_count() or 1
    return free, (f"note: other processes keep about {busy:.1f} of the {cores} cores busy, so this uses {free} "
                  f"thread{'s' * (free > 1)} instead of {configured} (threads that wait for each other run several "
                  f"times slower on busy cores); {keep.format(n=configured)} keeps {configured}")
