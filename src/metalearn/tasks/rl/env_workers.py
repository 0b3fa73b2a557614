"""A gymnasium vector environment sharded over a few worker processes (``task.vector=async``).

gymnasium's ``AsyncVectorEnv`` gives every sub-environment its own process: 400 processes for a
meta-batch of 20 tasks x 20 episodes, on a machine with a few cores. Here each worker process holds
a synchronous vector environment over a contiguous slice of the sub-environments (one worker per
core by default), steps it while the others step theirs, and sends back the observations, rewards,
end flags and the step's scalar ``info`` entries made dense (under same-step autoreset an ended
sub-environment's values come from ``final_info``). Sub-environment ``i`` is seeded and stepped
exactly as in one synchronous vector environment, so both give the same episodes.

Both paths can leave out the sub-environments whose episode has already ended (:func:`step_live`):
the sampler masks their steps, so stepping them (an ant that fell over is reset and walks on
unseen) is wasted physics.
"""
from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import signal
from typing import Any

import numpy as np

from ...errors import ConfigError
from .mujoco_sim import apply_physics, gymnasium

# entries of a gymnasium vector info that are not one scalar per sub-environment
_SKIP = ("final_obs", "final_info")


def available_cores() -> int:
    """Cores for this process's environment workers: those it may run on (its CPU affinity where
    the platform reports it), shared among the processes ``torchrun`` started on this machine."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def check_workers(workers: int) -> int:
    """``task.workers``, or a one-line error naming the values it may take."""
    if workers < 0:
        raise ConfigError(f"task.workers must be 0 (one per core) or a positive count, got {workers}")
    return workers


def dense_info(info: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each scalar-per-sub-environment entry of a same-step-autoreset vector ``info`` as one float64
    array, the values of the step just taken (an ended sub-environment's from ``final_info``)."""
    final, ended = info.get("final_info"), info.get("_final_info")
    keys = {k for k in info if not k.startswith("_") and k not in _SKIP}
    if final is not None:
        keys |= {k for k in final if not k.startswith("_") and k not in _SKIP}
    n = len(np.asarray(ended)) if ended is not None else None
    out: dict[str, np.ndarray] = {}
    for key in sorted(keys):
        value = np.asarray(info[key]) if key in info else None
        if value is not None and (value.ndim != 1 or value.dtype.kind not in "biuf"):
            continue
        if value is not None:
            dense = value.astype(np.float64)
        else:   # every sub-environment that has it ended at this step
            dense = np.zeros(n if n is not None else len(np.asarray(info["final_info"][key])), dtype=np.float64)
        if final is not None and ended is not None and key in final:
            take = np.asarray(ended, dtype=bool) & np.asarray(final.get("_" + key, ended), dtype=bool)
            dense[take] = np.asarray(final[key], dtype=np.float64)[take]
        out[key] = dense
    return out


Step = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]


def step_live(env: Any, actions: np.ndarray, live: np.ndarray | None, last_obs: np.ndarray) -> Step:
    """One step of a same-step-autoreset ``SyncVectorEnv`` (``info`` dense), or, given ``live``, of
    only its sub-environments where ``live`` is true, each stepped on its own and not reset when its
    episode ends; the others keep ``last_obs``, reward 0 and count as ended. Live sub-environments
    see exactly the steps they would in the whole vector step."""
    if live is None:
        obs, reward, terminated, truncated, info = env.step(actions)
        return obs, reward, terminated, truncated, dense_info(info)
    n = len(live)
    obs, reward = last_obs.copy(), np.zeros(n, dtype=np.float64)
    terminated, truncated = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    values: dict[str, np.ndarray] = {}
    for i in np.flatnonzero(live):
        obs[i], reward[i], terminated[i], truncated[i], info = env.envs[i].step(actions[i])
        for key, value in info.items():
            if np.ndim(value) == 0 and isinstance(value, (int, float, np.number)):
                values.setdefault(key, np.zeros(n, dtype=np.float64))[i] = value
    return obs, reward, terminated, truncated, values


def _worker(conn: Any, env_id: str, count: int, horizon: int, env_kwargs: dict[str, Any]) -> None:
    """One worker: a synchronous vector environment of ``count`` sub-environments, driven by
    messages ``(command, payload)`` until ``close`` (or until the parent is gone). Ctrl-C reaches
    the whole process group: the parent stops between steps and closes its workers, so they ignore
    it (and take SIGTERM's default) rather than run the trainer's handlers they inherit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        gym = gymnasium()
        env = gym.make_vec(env_id, num_envs=count, vectorization_mode="sync",
                           vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                           max_episode_steps=horizon, **env_kwargs)
    except Exception as exc:
        conn.send(("error", f"cannot make the environment {env_id!r}: {exc}"))
        conn.close()
        return
    conn.send(("ok", None))
    obs, parent = np.zeros(0), os.getppid()
    while True:
        try:
            # a parent killed outright may leave our pipe open (its other workers, forked after us,
            # hold copies of the parent's ends): look for it every second
            while not conn.poll(1.0):
                if os.getppid() != parent:
                    return
            command, payload = conn.recv()
        except (EOFError, OSError):   # the parent ended without closing us
            return
        try:
            if command == "reset":
                obs, _ = env.reset(seed=payload)
                conn.send(("ok", obs))
            elif command == "step":
                out = step_live(env, payload[0], payload[1], obs)
                obs = out[0]
                conn.send(("ok", out))
            elif command == "physics":
                for sub, scales in zip(env.envs, payload):
                    apply_physics(sub.unwrapped.model, scales)
                conn.send(("ok", None))
            else:   # close
                env.close()
                conn.send(("ok", None))
                conn.close()
                return
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ShardedVectorEnv:
    """``num_envs`` sub-environments of ``env_id`` in ``workers`` processes (0: one per available
    core), with the ``reset`` / ``step`` of a gymnasium vector environment (``info`` dense, see
    :func:`dense_info`) and ``set_physics`` for the physics-varied families."""

    def __init__(self, env_id: str, num_envs: int, horizon: int, env_kwargs: dict[str, Any],
                 workers: int = 0) -> None:
        count = min(num_envs, check_workers(workers) or available_cores())
        bounds = np.linspace(0, num_envs, count + 1).round().astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        # fork where the platform has it, as gymnasium's own workers do (spawn would re-import the
        # user's script in every worker); the workers run MuJoCo and numpy, never torch's threads
        context: Any = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.conns, self.procs = [], []
        for part in self.slices:
            parent, child = context.Pipe()
            proc = context.Process(target=_worker, args=(child, env_id, part.stop - part.start, horizon, env_kwargs),
                                   daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        self.closed = False
        self._gather()

    def _gather(self) -> list[Any]:
        replies = []
        for conn in self.conns:
            try:
                status, value = conn.recv()
            except EOFError:
                status, value = "error", "an environment worker process ended unexpectedly"
            replies.append((status, value))
        errors = [value for status, value in replies if status == "error"]
        if errors:
            self.close()
            raise ConfigError(errors[0])
        return [value for _, value in replies]

    def reset(self, seed: list[int]) -> tuple[np.ndarray, dict[str, Any]]:
        for conn, part in zip(self.conns, self.slices):
            conn.send(("reset", seed[part]))
        return np.concatenate(self._gather()), {}

    def step(self, actions: np.ndarray, live: np.ndarray | None = None) -> Step:
        """A vector step (``info`` dense); given ``live``, only those sub-environments (see
        :func:`step_live`)."""
        for conn, part in zip(self.conns, self.slices):
            conn.send(("step", (actions[part], None if live is None else live[part])))
        parts = self._gather()
        # a shard whose sub-environments have all ended stepped none and has no info: zeros (masked)
        keys = sorted({k for p in parts for k in p[4]})
        info = {k: np.concatenate([p[4].get(k, np.zeros(len(p[1]))) for p in parts]) for k in keys}
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]), info)

    def set_physics(self, scales: np.ndarray) -> None:
        for conn, part in zip(self.conns, self.slices):
            conn.send(("physics", scales[part]))
        self._gather()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for conn, proc in zip(self.conns, self.procs):
            try:
                if proc.is_alive():
                    conn.send(("close", None))
                    conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                pass
            conn.close()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
