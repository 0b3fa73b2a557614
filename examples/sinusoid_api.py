"""MAML on sine waves from the Python API: build, meta-train, adapt to one new task, predict.

    python examples/sinusoid_api.py            # 10,000 meta-steps, about 40 s on one CPU thread
    python examples/sinusoid_api.py --short    # a few hundred steps (what CI runs)
"""
import argparse
import tempfile

import torch

import metalearn as ml

parser = argparse.ArgumentParser()
parser.add_argument("--short", action="store_true")
args = parser.parse_args()
torch.set_num_threads(1)

tasks = ml.SinusoidTasks(shots=10)                         # Finn et al. (2017), section 5.1
torch.manual_seed(0)
maml = ml.MAML(ml.mlp(1, [40, 40], 1), inner_lr=0.01, inner_steps=1, mode="second_order")
with tempfile.TemporaryDirectory() as out:
    result = ml.meta_train(maml, tasks, out, steps=300 if args.short else 10_000, meta_batch=25,
                           lr=1e-3, progress=not args.short)
print(f"meta-trained {result.step} steps, best validation MSE {result.best_val:.3f}")

new_task = tasks.sample(1, torch.Generator().manual_seed(2024))
learner = maml.adapt(new_task.support_x[0], new_task.support_y[0], steps=10)
prediction = learner(new_task.query_x[0])
before = torch.nn.functional.mse_loss(maml.adapt(new_task.support_x[0], new_task.support_y[0], steps=0)(new_task.query_x[0]), new_task.query_y[0])
after = torch.nn.functional.mse_loss(prediction, new_task.query_y[0])
print(f"query MSE on a new sine wave: {before:.3f} before adaptation, {after:.3f} after 10 steps")
