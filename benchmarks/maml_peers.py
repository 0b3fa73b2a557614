"""MAML meta-step speed and memory: metalearn against learn2learn, higher and TorchOpt, side by side.

Work unit: a MAML meta-step on Omniglot-shaped tasks (1x28x28 inputs), Conv4 with 64
filters and batch-statistics BatchNorm, one inner SGD step with lr 0.4, Adam outer; second and
first order. Settings: ``5w1s-q15`` (5-way 1-shot, 15 queries per class, meta-batch 32), ``5w1s``
(the paper's 1 query per class, meta-batch 32) and ``20w1s`` (20-way 1-shot, 1 query, meta-batch
16, one inner step here too so that every library runs the same work).

Every implementation runs in its own process, written from its library's documented API, on the
same initial weights and the same batches; before any timing counts, each one's meta-gradient is
checked against a float64 per-task reference (relative error under 1e-4). Runs alternate between
implementations, and the table shows the median of ``--repeats``: meta-steps/s, tasks/s, peak
resident memory, and each row's speed relative to metalearn. Libraries that are not installed are
skipped (``pip install 'metalearn-torch[bench]'`` installs them where they build).

``--model plain`` (default) gives every implementation an ``nn.Sequential`` Conv4 in the paper's
order; ``--model metalearn`` gives every one ``metalearn.models.Conv4`` (the same function and
weights; channels-last on the CPU). At the end the work of one meta-step is counted with
``torch.utils.flop_counter`` and set against the rate of one large fp32 convolution on the same
device and threads: the fraction of the machine each implementation reaches.

With ``--device cuda`` the timed loop starts after ``--warmup`` untimed steps, the clock waits
for the GPU, peak memory is the GPU's (``torch.cuda.max_memory_allocated``), TF32 is off for every
implementation (the float64 check needs plain fp32), and two more rows appear: metalearn's
``vmap`` engine and the trainer's ``train.cuda_graph`` path, which captures metalearn's meta-step
in a CUDA graph (``metalearn-graph``).

    python benchmarks/maml_peers.py [--setting 5w1s-q15] [--order second] [--steps 4] [--repeats 3] [--model plain]
    python benchmarks/maml_peers.py --device cuda --setting 5w1s
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types

import torch
import torch.nn.functional as F
from torch import nn

SETTINGS = {"5w1s-q15": (5, 1, 15, 32), "5w1s": (5, 1, 1, 32), "20w1s": (20, 1, 1, 16)}
IMPLS = ("metalearn", "bare-loop", "higher", "learn2learn", "torchopt")
PEERS = ("higher", "learn2learn", "torchopt")
GPU_IMPLS = ("metalearn", "metalearn-vmap", "metalearn-graph", "higher", "learn2learn", "torchopt")
INNER_LR = 0.4


def conv4(ways: int) -> nn.Module:
    layers = []
    c = 1
    for _ in range(4):
        layers += [nn.Conv2d(c, 64, 3, padding=1), nn.BatchNorm2d(64, track_running_stats=False), nn.ReLU(),
                   nn.MaxPool2d(2)]
        c = 64
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64, ways))


def make_batches(ways: int, shots: int, queries: int, tasks: int, n: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        xs = torch.rand(tasks, ways * shots, 1, 28, 28, generator=g, dtype=dtype)
        xq = torch.rand(tasks, ways * queries, 1, 28, 28, generator=g, dtype=dtype)
        ys = torch.arange(ways).repeat_interleave(shots).expand(tasks, -1)
        yq = torch.arange(ways).repeat_interleave(queries).expand(tasks, -1)
        out.append((xs, ys, xq, yq))
    return out


def metalearn_conv4(ways: int) -> nn.Module:
    """``metalearn.models.Conv4`` (the same function; it pools before the ReLU and works
    channels-last on the CPU) with the weights of ``conv4(ways)`` under the same seed."""
    import metalearn as ml
    plain = conv4(ways)
    ours = ml.models.conv4(1, ways, width=64, image_size=28)
    for i in range(4):
        ours.features[4 * i].load_state_dict(plain[4 * i].state_dict())
        ours.features[4 * i + 1].load_state_dict(plain[4 * i + 1].state_dict())
    ours.head.load_state_dict(plain[-1].state_dict())
    return ours


MODELS = {"plain": conv4, "metalearn": metalearn_conv4}


def reference_grad(model: nn.Module, batch, second: bool, dtype=torch.float64) -> list[torch.Tensor]:
    """float64 per-task loop with torch.autograd.grad: the reference every implementation must match."""
    m = copy.deepcopy(model).to(dtype=torch.float64)
    params = dict(m.named_parameters())
    xs, ys, xq, yq = (t.double() if t.is_floating_point() else t for t in batch)
    total = 0.0
    for t in range(xs.shape[0]):
        loss = F.cross_entropy(torch.func.functional_call(m, params, (xs[t],)), ys[t])
        gs = torch.autograd.grad(loss, list(params.values()), create_graph=second)
        fast = {k: v - INNER_LR * g for (k, v), g in zip(params.items(), gs)}
        total = total + F.cross_entropy(torch.func.functional_call(m, fast, (xq[t],)), yq[t])
    return [g.to(dtype) for g in torch.autograd.grad(total / xs.shape[0], list(params.values()))]


# -- one meta-step per implementation: returns the meta-loss, leaves gradients in model's .grad ---
def step_metalearn(model: nn.Module, second: bool, engine: str = "auto"):
    import metalearn as ml
    algo = ml.MAML(model, inner_lr=INNER_LR, inner_steps=1, mode="second_order" if second else "first_order",
                   loss="cross_entropy", engine=engine)

    def step(batch):  # as the trainer does it: back-propagated task by task (one task's graph at a time)
        return algo.meta_backward(ml.TaskBatch(*batch))
    return step


def step_metalearn_graph(model: nn.Module, second: bool):
    """CUDA only: the trainer's ``train.cuda_graph`` path (``metalearn.training.cuda_graph.GraphedMetaStep``):
    the meta-step captured once as a CUDA graph (again for a new dtype or shape) and replayed."""
    import metalearn as ml
    from metalearn.training.cuda_graph import GraphedMetaStep
    graphed = GraphedMetaStep(ml.MAML(model, inner_lr=INNER_LR, inner_steps=1, loss="cross_entropy",
                                      mode="second_order" if second else "first_order", engine="loop"))

    def step(batch):
        return graphed(ml.TaskBatch(*batch))
    return step


def step_bare(model: nn.Module, second: bool):
    params = dict(model.named_parameters())

    def step(batch):
        xs, ys, xq, yq = batch
        total = 0.0
        for t in range(xs.shape[0]):
            loss = F.cross_entropy(torch.func.functional_call(model, params, (xs[t],)), ys[t])
            gs = torch.autograd.grad(loss, list(params.values()), create_graph=second)
            fast = {k: v - INNER_LR * g for (k, v), g in zip(params.items(), gs)}
            total = total + F.cross_entropy(torch.func.functional_call(model, fast, (xq[t],)), yq[t])
        total = total / xs.shape[0]
        total.backward()
        return total
    return step


def step_higher(model: nn.Module, second: bool):
    import higher
    inner_opt = torch.optim.SGD(model.parameters(), lr=INNER_LR)

    def step(batch):
        xs, ys, xq, yq = batch
        total = 0.0
        for t in range(xs.shape[0]):
            with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False,
                                      track_higher_grads=second) as (fmodel, diffopt):
                diffopt.step(F.cross_entropy(fmodel(xs[t]), ys[t]))
                q = F.cross_entropy(fmodel(xq[t]), yq[t]) / xs.shape[0]
                if second:
                    q.backward()
                else:  # without higher-order tracking the fast weights are cut from the model's:
                    # first-order MAML adds the query gradient at the fast weights to the model's
                    for p, g in zip(model.parameters(), torch.autograd.grad(q, list(fmodel.parameters()))):
                        p.grad = g if p.grad is None else p.grad + g
                total += q.item()
        return torch.tensor(total)
    return step


def import_learn2learn_maml() -> types.ModuleType:
    """learn2learn's MAML module, unchanged. Its package ``__init__`` imports torchvision and the
    Cython data extensions, which fail to load beside a CPU torch build (or from a source tree);
    the MAML module needs neither, so on failure the two packages above it are registered bare
    (their own ``__init__`` not run) and the module is imported from the package's own files."""
    import importlib
    import importlib.util
    try:
        return importlib.import_module("learn2learn.algorithms.maml")
    except Exception:  # noqa: BLE001
        for name in [m for m in sys.modules if m == "learn2learn" or m.startswith("learn2learn.")]:
            del sys.modules[name]
    spec = importlib.util.find_spec("learn2learn")
    root = list(spec.submodule_search_locations)[0]
    for name, path in (("learn2learn", root), ("learn2learn.algorithms", os.path.join(root, "algorithms"))):
        pkg = types.ModuleType(name)
        pkg.__path__ = [path]
        sys.modules[name] = pkg
    return importlib.import_module("learn2learn.algorithms.maml")


def step_learn2learn(model: nn.Module, second: bool):
    maml_mod = import_learn2learn_maml()
    maml = maml_mod.MAML(model, lr=INNER_LR, first_order=not second)

    def step(batch):
        xs, ys, xq, yq = batch
        total = 0.0
        for t in range(xs.shape[0]):
            learner = maml.clone()
            learner.adapt(F.cross_entropy(learner(xs[t]), ys[t]))
            q = F.cross_entropy(learner(xq[t]), yq[t]) / xs.shape[0]
            q.backward()
            total += q.item()
        return torch.tensor(total)
    return step


def step_torchopt(model: nn.Module, second: bool):
    import torchopt
    names = [n for n, _ in model.named_parameters()]
    inner = torchopt.sgd(lr=INNER_LR)

    def step(batch):
        xs, ys, xq, yq = batch
        params = tuple(model.parameters())
        total = 0.0
        for t in range(xs.shape[0]):
            state = inner.init(params)
            loss = F.cross_entropy(torch.func.functional_call(model, dict(zip(names, params)), (xs[t],)), ys[t])
            grads = torch.autograd.grad(loss, params, create_graph=second)
            updates, state = inner.update(grads, state, inplace=False)
            fast = torchopt.apply_updates(params, updates, inplace=False)
            q = F.cross_entropy(torch.func.functional_call(model, dict(zip(names, fast)), (xq[t],)), yq[t]) / xs.shape[0]
            q.backward()
            total += q.item()
        return torch.tensor(total)
    return step


STEPS = {"metalearn": step_metalearn, "metalearn-vmap": lambda m, s: step_metalearn(m, s, "vmap"),
         "metalearn-loop": lambda m, s: step_metalearn(m, s, "loop"),
         "metalearn-graph": step_metalearn_graph,
         "bare-loop": step_bare, "higher": step_higher,
         "learn2learn": step_learn2learn, "torchopt": step_torchopt}


def worker(impl: str, setting: str, order: str, steps: int, threads: int, device: str = "cpu",
           warmup: int = 0, phase: str = "both", model_name: str = "plain") -> dict:
    """``phase``: ``check`` (the float64 meta-gradient check only), ``time`` (the timing only) or
    ``both``. On a CPU the two run in separate processes, so that the peak resident memory is the
    timed float32 work's and not the float64 check's; on CUDA the peak counter is reset instead."""
    torch.set_num_threads(threads)
    cuda = device.startswith("cuda")
    if cuda:  # plain fp32 arithmetic for every implementation (no TF32 tensor-core rounding)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    ways, shots, queries, tasks = SETTINGS[setting]
    second = order == "second"
    torch.manual_seed(0)
    model = MODELS[model_name](ways).to(device)
    batches = [tuple(t.to(device) for t in b) for b in make_batches(ways, shots, queries, tasks, steps + warmup + 1)]
    step = STEPS[impl](model, second)
    # correctness before timing, in float64: the implementation's meta-gradient against the
    # float64 reference. (In float32 every implementation, the reference loop included, is ~1e-3
    # away from float64 on these batch-statistics BatchNorm nets: the last block normalises over
    # five 1x1 maps, so the rounding of float32 is amplified; the math is what is checked here.)
    rel = float("nan")
    if phase != "time":
        model.double()
        model.zero_grad()
        step(tuple(t.double() if t.is_floating_point() else t for t in batches[0]))
        ref = reference_grad(model, batches[0], second, dtype=torch.float64)
        got = [p.grad for p in model.parameters()]
        rel = max(((g - r).norm() / r.norm().clamp_min(1e-12)).item() for g, r in zip(got, ref) if r.norm() > 1e-8)
        if rel > 1e-4:
            return {"impl": impl, "error": f"float64 meta-gradient relative error {rel:.2e} > 1e-4"}
        model.float()
        model.zero_grad(set_to_none=True)
    if phase == "check":
        return {"impl": impl, "rel_err": rel}
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for b in batches[1:1 + warmup]:  # untimed: cuDNN algorithm choice, allocator warm-up
        opt.zero_grad()
        step(b)
        opt.step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for b in batches[1 + warmup:]:
        opt.zero_grad()
        step(b)
        opt.step()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"impl": impl, "steps_s": steps / dt, "tasks_s": steps * tasks / dt, "rel_err": rel, "peak_mb": peak}


def work_flops(setting: str, order: str, device: str = "cpu", model_name: str = "plain") -> float:
    """Floating-point operations of one meta-step (convolutions and matrix products, forward and
    every backward, as ``torch.utils.flop_counter`` counts them), on metalearn's step."""
    from torch.utils.flop_counter import FlopCounterMode
    ways, shots, queries, tasks = SETTINGS[setting]
    torch.manual_seed(0)
    model = MODELS[model_name](ways).to(device)
    batch = tuple(t.to(device) for t in make_batches(ways, shots, queries, tasks, 1)[0])
    step = STEPS["metalearn"](model, order == "second")
    with FlopCounterMode(display=False) as counter:
        step(batch)
    return float(counter.get_total_flops())


def conv_rate(threads: int, device: str = "cpu", repeats: int = 5) -> float:
    """The machine's fp32 convolution rate in FLOP/s: a large 3x3 convolution (256 x 64 x 28 x 28,
    64 filters), forward plus both backward products, best of ``repeats``."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 64, 28, 28, generator=g).to(device).requires_grad_(True)
    w = torch.randn(64, 64, 3, 3, generator=g).to(device).requires_grad_(True)
    flops = 3 * 2 * 256 * 64 * 28 * 28 * 64 * 9
    best = float("inf")
    for i in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        F.conv2d(x, w, padding=1).sum().backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:  # the first call is a warm-up
            best = min(best, time.perf_counter() - t0)
    return flops / best


def available(impl: str) -> bool:
    mod = {"higher": "higher", "learn2learn": "learn2learn", "torchopt": "torchopt"}.get(impl)
    if mod is None:
        return True
    import importlib.util
    return importlib.util.find_spec(mod) is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setting", choices=SETTINGS, default="5w1s-q15")
    ap.add_argument("--order", choices=("second", "first"), default="second")
    ap.add_argument("--steps", type=int, help="timed meta-steps per run (default 4 on CPU, 30 on CUDA)")
    ap.add_argument("--warmup", type=int, help="untimed meta-steps first (default 1 on CPU, 5 on CUDA)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--impls", help=f"comma-separated, from {', '.join(STEPS)} (default: {', '.join(IMPLS)}; "
                    f"on CUDA also metalearn-vmap)")
    ap.add_argument("--model", choices=MODELS, default="plain",
                    help="the Conv4 every implementation trains: plain (an nn.Sequential in the paper's "
                         "order) or metalearn (metalearn.models.Conv4: same function and weights)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--phase", default="both", help=argparse.SUPPRESS)
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    args.steps = args.steps or (30 if cuda else 4)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    if args.worker == "flops":
        print(json.dumps({"flops": work_flops(args.setting, args.order, args.device, args.model),
                          "conv_rate": conv_rate(args.threads, args.device)}))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.setting, args.order, args.steps, args.threads, args.device,
                                args.warmup, args.phase, args.model)))
        return
    wanted = args.impls.split(",") if args.impls else list(GPU_IMPLS if cuda else IMPLS)
    unknown = [i for i in wanted if i not in STEPS]
    if unknown:
        ap.error(f"unknown implementation(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    impls = [i for i in wanted if available(i)]
    skipped = [i for i in wanted if i not in impls]
    results: dict[str, list[dict]] = {i: [] for i in impls}

    def launch(impl: str, phase: str) -> dict:
        cmd = [sys.executable, __file__, "--worker", impl, "--setting", args.setting, "--order", args.order,
               "--steps", str(args.steps), "--threads", str(args.threads), "--device", args.device,
               "--warmup", str(args.warmup), "--phase", phase, "--model", args.model]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else json.dumps(
            {"impl": impl, "error": (out.stderr.strip().splitlines() or ["failed"])[-1][:120]})
        return json.loads(line)

    checked = {}
    if not cuda:  # the float64 check first, in its own process
        for impl in impls:
            checked[impl] = launch(impl, "check")
            if "error" in checked[impl]:
                results[impl].append(checked[impl])
    for _ in range(args.repeats):
        for impl in impls:  # alternate implementations within each repeat
            if impl in checked and "error" in checked[impl]:
                continue
            r = launch(impl, "both" if cuda else "time")
            if impl in checked and "error" not in r:
                r["rel_err"] = checked[impl]["rel_err"]
            results[impl].append(r)
    ways, shots, queries, tasks = SETTINGS[args.setting]
    print(f"MAML {args.order} order, {ways}-way {shots}-shot, {queries} queries/class, meta-batch {tasks}, "
          f"Conv4-64 + BatchNorm ({args.model} module), {args.device}" + ("" if cuda else f", {args.threads} threads")
          + f", {args.steps} timed steps, median of {args.repeats}")
    base = None
    rows = []
    for impl, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            rows.append((impl, None, runs[0].get("error", "failed")))
            continue
        med = {k: statistics.median(r[k] for r in ok) for k in ("steps_s", "tasks_s", "peak_mb", "rel_err")}
        rows.append((impl, med, ""))
    ours = [m["tasks_s"] for i, m, _ in rows if m and i.startswith("metalearn") and "graph" not in i]
    graphs = [m["tasks_s"] for i, m, _ in rows if m and "graph" in i]
    peers = [m["tasks_s"] for i, m, _ in rows if m and i in PEERS]
    base = max(ours) if ours else None
    print(f"| {'implementation':<20} | {'meta-steps/s':>12} | {'tasks/s':>8} | {('peak GPU MB' if cuda else 'peak MB'):>8} | {'f64 grad err':>12} | {'metalearn is':>12} |")
    print(f"|{'-' * 22}|{'-' * 14}|{'-' * 10}|{'-' * 10}|{'-' * 14}|{'-' * 14}|")
    for impl, med, err in rows:
        if med is None:
            print(f"| {impl:<20} | {'error: ' + err} |")
            continue
        ratio = f"{base / med['tasks_s']:.2f}x" if base else "-"
        print(f"| {impl:<20} | {med['steps_s']:>12.3f} | {med['tasks_s']:>8.2f} | {med['peak_mb']:>8.0f} | "
              f"{med['rel_err']:>12.1e} | {ratio:>12} |")
    if base and peers:
        print(f"metalearn (its fastest engine above) / fastest peer: {base / max(peers):.2f}x")
    if graphs and peers:
        print(f"metalearn with train.cuda_graph / fastest peer: {max(graphs) / max(peers):.2f}x")
    # how close to the machine: the work's FLOPs at each row's rate against a large convolution's rate
    probe = launch("flops", "both")
    if "flops" in probe:
        per_task = probe["flops"] / tasks
        print(f"work: {probe['flops'] / 1e9:.1f} GFLOP per meta-step; a large fp32 3x3 convolution here runs at "
              f"{probe['conv_rate'] / 1e9:.1f} GFLOP/s (forward + backward)")
        for impl, med, _ in rows:
            if med:
                rate = med["tasks_s"] * per_task
                print(f"  {impl:<20} {rate / 1e9:7.1f} GFLOP/s = {100 * rate / probe['conv_rate']:5.1f}% of it")
    if skipped:
        print(f"not installed (skipped): {', '.join(skipped)}")


if __name__ == "__main__":
    main()
