"""The MuJoCo plumbing shared by the MuJoCo task families and their environment worker processes:
gymnasium imported with its one-line error naming the extra, MuJoCo's warnings routed to a logger,
and the physics of one task written into a MuJoCo model (the rand_param_envs protocol)."""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ...errors import ConfigError


def gymnasium() -> Any:
    """gymnasium with MuJoCo, or a one-line error naming the extra to install. Without a display,
    MuJoCo renders offscreen through EGL (``MUJOCO_GL``, unless set). MuJoCo's warnings go to the
    ``metalearn.mujoco`` logger (see :func:`log_mujoco_warning`)."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import gymnasium as gym
        import mujoco
    except ImportError:
        raise ConfigError("the MuJoCo task families need gymnasium and mujoco; install them with "
                          "pip install 'metalearn-torch[rl]'") from None
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(log_mujoco_warning)
    return gym


_MUJOCO_WARNED: set[str] = set()


def log_mujoco_warning(message: str) -> None:
    """MuJoCo's warning handler: each distinct message once to the ``metalearn.mujoco`` logger.
    MuJoCo's default handler prints every warning and appends it to ``MUJOCO_LOG.TXT`` in the
    working directory (HalfCheetah-v5's XML gives one per environment made: hundreds per vector
    environment, and a stray file beside the user's run)."""
    if message not in _MUJOCO_WARNED:
        _MUJOCO_WARNED.add(message)
        logging.getLogger("metalearn.mujoco").info("MuJoCo: %s", message)


_DEFAULTS: dict[int, dict[str, np.ndarray]] = {}
# the rand_param_envs protocol: which arrays of the model, and the base of their log-uniform scale
PHYSICS = {"body_mass": 1.5, "body_inertia": 1.5, "geom_friction": 1.5, "dof_damping": 1.3}


def apply_physics(model: Any, scales: np.ndarray) -> None:
    """Write one task's physics into a MuJoCo model: ``scales`` = log-scales of masses, inertias,
    frictions, damping (in that order, concatenated), applied to the defaults saved on first use."""
    defaults = _DEFAULTS.setdefault(id(model), {k: getattr(model, k).copy() for k in PHYSICS})
    offset = 0
    for key, base in PHYSICS.items():
        shape = getattr(model, key).shape
        count = shape[0]
        log_scale = scales[offset:offset + count].reshape(-1, *([1] * (len(shape) - 1)))
        offset += count
        getattr(model, key)[:] = defaults[key] * np.power(base, log_scale)
