"""Meta-RL speed on this machine: the sampler against the raw environments, and a meta-iteration.

1. **Sampler vs raw step rate**: environment steps per second of ``EnvTasks.collect`` (the policy's
   forward batched over every environment of every task, per-task action noise, advantages) against
   the same environments stepped in a plain loop with fixed actions (no policy), side by side, for
   nav2d (tensor code) and for HalfCheetah-v5 and Ant-v5 in one gymnasium ``SyncVectorEnv`` of tasks
   x episodes sub-environments, and sharded over worker processes (``task.vector=async``, one per
   core). Target: the sampler keeps >= 70% of the raw vectorized rate. The baseline, ``every``, is
   one SyncVectorEnv whose every sub-environment is stepped to the horizon, as gymnasium's vector
   environments do (before 2026-12-05 the sampler did too); ``sync`` and ``async`` leave out the
   sub-environments whose episode has ended. Steps/s counts live steps only.
2. **Seconds per meta-iteration** of each preset (its meta-batch, episodes and horizon, MAML-TRPO),
   split into sampling (both collections) and the rest (inner steps, meta-gradient, the TRPO step:
   conjugate gradient on Fisher-vector products and the line search), with each vector mode of
   ``--vectors`` and its ratio to the first.

    python benchmarks/rl_speed.py [--iterations 2] [--threads 2] [--presets rl-nav2d,rl-halfcheetah-dir]
                                  [--vectors every,sync,async]

Run it alone: on 2 cores a second busy process changes every number.
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import time
from typing import Iterator

import torch

from metalearn.training.build import build_trainer
from metalearn.config import apply_overrides, load_preset, validate
from metalearn.functional import make_forward
from metalearn.models import GaussianPolicy
from metalearn._util.seeding import generator


@contextlib.contextmanager
def stepping(vector: str) -> Iterator[str]:
    """The config's ``task.vector`` for a mode of ``--vectors``; under ``every``, the MuJoCo
    environments step every sub-environment, ended or not (the baseline)."""
    if vector != "every":
        yield vector
        return
    from metalearn.tasks.rl.mujoco import GymVectorEnv
    original = GymVectorEnv.step
    GymVectorEnv.step = lambda self, actions, live=None: original(self, actions)   # type: ignore[method-assign]
    try:
        yield "sync"
    finally:
        GymVectorEnv.step = original   # type: ignore[method-assign]


def raw_rate(family, tasks: int, episodes: int) -> float:
    """Environment steps per second stepping the same vector environment with zero actions."""
    batch = family.sample_tasks(tasks, torch.Generator().manual_seed(0))
    env = family.make_env(batch, episodes)
    env.reset(list(range(tasks)))
    actions = torch.zeros(tasks, episodes, family.action_dim)
    t0 = time.perf_counter()
    for _ in range(family.horizon):
        env.step(actions)
    return tasks * episodes * family.horizon / (time.perf_counter() - t0)


def sampler_rate(family, tasks: int, episodes: int) -> float:
    torch.manual_seed(0)
    policy = GaussianPolicy(family.obs_dim, family.action_dim)
    forward, params = make_forward(policy), dict(policy.named_parameters())
    tree = family.sample(tasks, torch.Generator().manual_seed(0))
    gens = [tree.generator(t) for t in range(tasks)]
    t0 = time.perf_counter()
    data = family.collect(forward, params, tree.data["task"], gens, False, episodes)
    seconds = time.perf_counter() - t0
    return sum(float(d["mask"].sum()) for d in data) / seconds


def meta_iteration(preset: str, iterations: int, threads: int, vector: str,
                   extra: list[str]) -> tuple[float, float]:
    overrides = [*extra, f"train.threads={threads}", f"task.vector={vector}"]
    cfg = validate(apply_overrides(load_preset(preset), overrides))
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(cfg, tmp, progress=False)
        algo, tasks = trainer.algorithm, trainer.tasks
        rng = generator("train", 0)
        total = sample = 0.0
        for i in range(iterations + 1):
            batch = tasks.sample(cfg.train.meta_batch, rng)
            t0 = time.perf_counter()
            trainer.optimizer.zero_grad()
            algo.meta_backward(batch)
            trainer.optimizer.step(algo.closure(batch))
            if i:   # the first iteration makes the environments
                total += time.perf_counter() - t0
                sample += algo.last_metrics["sample_seconds"]
    return total / iterations, sample / iterations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--presets", default="rl-nav2d,rl-halfcheetah-dir,rl-halfcheetah-vel,rl-hopper-params,rl-ant-dir")
    ap.add_argument("--vectors", default="every,sync,async",
                    help="how the MuJoCo environments are stepped (every, sync, async); the first is the baseline")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for every preset's meta-iteration, e.g. task.horizon=200")
    args = ap.parse_args()
    vectors = args.vectors.split(",")
    torch.set_num_threads(args.threads)
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"capability {torch.backends.cpu.get_cpu_capability()}, {args.threads} threads\n")
    from metalearn.tasks import Nav2dTasks
    families: list = [("nav2d", Nav2dTasks, "sync", 20, 20)]
    try:
        from metalearn.tasks.rl.env_workers import available_cores
        from metalearn.tasks.rl.mujoco import AntDir, HalfCheetahDir
        for cls in (HalfCheetahDir, AntDir):
            for vector in vectors:
                label = {"every": "one SyncVectorEnv, every sub-environment stepped",
                         "sync": "one SyncVectorEnv, ended ones left out"}.get(
                    vector, f"{vector}, {available_cores()} workers, ended ones left out")
                families.append((f"{cls.env_id}, {label}", cls, vector, 20, 20))
    except Exception as exc:  # noqa: BLE001 - the extra is optional
        print(f"(MuJoCo skipped: {exc})")
    print("| environments | tasks x episodes | raw steps/s | sampler steps/s | sampler / raw | sampler / first row's |")
    print("|---|---:|---:|---:|---:|---:|")
    first: dict[str, float] = {}
    for name, cls, vector, t, e in families:
        with stepping(vector) as mode:
            fam = cls(horizon=100) if cls is Nav2dTasks else cls(horizon=100, vector=mode)
            sampler_rate(fam, t, e)   # warm up (makes the environments)
            raw = raw_rate(fam, t, e)
            smp = sampler_rate(fam, t, e)
        env = name.split(",")[0]
        first.setdefault(env, smp)
        print(f"| {name} | {t} x {e} | {raw:,.0f} | {smp:,.0f} | {smp / raw:.2f} | {smp / first[env]:.2f}x |")
        for vec in fam._envs.values():
            vec.close()
        fam._envs.clear()
    print(f"\nmeta-iterations with {' '.join('--set ' + o for o in args.set)}" if args.set else "")
    print("| preset | vector | s / meta-iteration | sampling | rest (inner step, meta-gradient, TRPO) "
          "| sampling share | speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for preset in args.presets.split(","):
        base = None
        for vector in vectors if preset != "rl-nav2d" else ["sync"]:   # (nav2d is tensor code)
            try:
                with stepping(vector) as mode:
                    total, sample = meta_iteration(preset, args.iterations, args.threads, mode, args.set)
            except Exception as exc:  # noqa: BLE001
                print(f"| {preset} | {vector} | skipped: {exc} | | | | |")
                continue
            base = base or total
            print(f"| {preset} | {vector} | {total:.2f} | {sample:.2f} | {total - sample:.2f} | {sample / total:.0%} "
                  f"| {base / total:.2f}x |")


if __name__ == "__main__":
    main()
