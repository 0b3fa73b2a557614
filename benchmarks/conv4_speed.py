"""Conv4 on the CPU: metalearn's Conv4 against the paper's block order with ``nn.MaxPool2d``.

Both are the same function with the same weights (``tests/test_models.py`` checks values and
second-order gradients in float64); metalearn's computes its first convolution as a patch product
that lands channels-last, stays channels-last after it on the CPU and pools before the ReLU (they
commute). Printed: 2x2 max-pooling alone, forward + backward, in the default layout and through
``max_pool2x2`` below (pooling channels-last and back, with ``metalearn.models.cpu_layout``'s
relayout; checked at start to equal ``nn.MaxPool2d(2)``, values and gradients), at the three
sizes of an Omniglot Conv4 (75 images, 64 channels), then one
second-order MAML meta-step on Omniglot-shaped tasks (5-way 1-shot, 15 queries per class, one inner
step, back-propagated task by task), both models alternating, median of ``--repeats``.

    python benchmarks/conv4_speed.py [--threads 2] [--tasks 8] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import metalearn as ml
from metalearn.models.cpu_layout import _CL, _NCHW, _plain, _Relayout, channels_last


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)``, computed in the channels-last layout on the CPU and returned in
    ``x``'s layout."""
    if _plain(x) or x.is_contiguous(memory_format=_CL):
        return F.max_pool2d(x, 2)
    return _Relayout.apply(F.max_pool2d(channels_last(x), 2), _NCHW, _CL)


def check_max_pool2x2() -> None:
    """``max_pool2x2`` is ``nn.MaxPool2d(2)``: the same values and input gradient on a random batch
    (odd width: both floor), so the timings below compare two ways of computing one function."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 8, 14, 13, generator=gen, requires_grad=True)
    g = torch.randn(6, 8, 7, 6, generator=gen)
    outs = []
    for pool in (nn.MaxPool2d(2), max_pool2x2):
        y = pool(x)
        gx, = torch.autograd.grad(y, x, g)
        outs.append((y, gx))
    (y_ref, g_ref), (y, gx) = outs
    if not (torch.equal(y, y_ref) and torch.equal(gx, g_ref)):
        raise SystemExit("max_pool2x2 differs from nn.MaxPool2d(2)")


def paper_conv4(model: ml.models.Conv4) -> nn.Module:
    layers = []
    for conv, bn in zip(model.features[0::4], model.features[1::4]):
        layers += [conv, bn, nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(nn.Sequential(*layers), nn.Flatten(), model.head)


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=8, help="tasks per timed meta-step")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    check_max_pool2x2()
    torch.manual_seed(0)
    print(f"CPU, {args.threads} threads, median of {args.repeats}")
    print("| 2x2 max-pool, forward + backward | nn.MaxPool2d ms | max_pool2x2 ms | speed-up |")
    print("|---|---:|---:|---:|")
    for size in (28, 14, 7):
        x = torch.randn(75, 64, size, size, requires_grad=True)
        g = torch.randn(75, 64, size // 2, size // 2)
        a = median_ms(lambda: F.max_pool2d(x, 2).backward(g), 4 * args.repeats)
        b = median_ms(lambda: max_pool2x2(x).backward(g), 4 * args.repeats)
        print(f"| 75 x 64 x {size} x {size} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")

    model = ml.models.conv4(1, 5, width=64, image_size=28)
    models = {"paper order, nn.MaxPool2d": paper_conv4(model), "metalearn Conv4": model}
    gen = torch.Generator().manual_seed(0)
    batch = ml.TaskBatch(torch.rand(args.tasks, 5, 1, 28, 28, generator=gen), torch.arange(5).repeat(args.tasks, 1),
                         torch.rand(args.tasks, 75, 1, 28, 28, generator=gen),
                         torch.arange(5).repeat_interleave(15).repeat(args.tasks, 1))
    algos = {name: ml.MAML(m, inner_lr=0.4, inner_steps=1, loss="cross_entropy", engine="loop")
             for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for name, algo in algos.items():  # untimed warm-up
        algo.meta_backward(batch)
    for _ in range(args.repeats):
        for name, algo in algos.items():  # alternating
            model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            algo.meta_backward(batch)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["paper order, nn.MaxPool2d"])
    print(f"\n| second-order MAML meta-step, {args.tasks} tasks, 15 queries/class | tasks/s | speed |")
    print("|---|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {args.tasks / med:.2f} | {base / med:.2f}x |")


if __name__ == "__main__":
    main()
