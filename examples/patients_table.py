"""A grouped table from the Python API: one task per patient, adapt to a new patient from their
first visits, predict the later ones.

The table is synthetic (so that the example runs anywhere): each patient's response to a dose
follows their own sensitivity and baseline, with age, a sex column and a visit number.

    python examples/patients_table.py                    # 2,000 meta-steps, about 30 s on one thread
    python examples/patients_table.py --short            # a few hundred steps (what CI runs)
    python examples/patients_table.py --csv runs/patients.csv # only write the table, for the CLI:
    metalearn train table --out runs/table --set task.data=runs/patients.csv --set task.group=patient \\
        --set task.target=response --set task.time=visit
"""
import argparse
import tempfile

import numpy as np
import torch

import metalearn as ml


def patients_table(n: int = 120, visits: int = 20, seed: int = 0):
    import pandas as pd
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n):
        age, sex = rng.uniform(20, 80), rng.choice(["F", "M"])
        sensitivity = rng.lognormal(0.0, 0.5) * (1.3 if sex == "F" else 1.0)
        baseline = 120 + 0.3 * (age - 50) + rng.normal(0, 8)
        for v in range(visits):
            dose = rng.choice([0.0, 5.0, 10.0, 20.0])
            response = baseline - sensitivity * 10 * np.log1p(dose) + rng.normal(0, 2)
            rows.append({"patient": f"p{p:03d}", "visit": v, "dose": dose, "age": round(age, 1), "sex": sex,
                         "response": round(response, 2)})
    return pd.DataFrame(rows)


parser = argparse.ArgumentParser()
parser.add_argument("--short", action="store_true")
parser.add_argument("--csv", help="only write the table to this file")
args = parser.parse_args()
df = patients_table()
if args.csv:
    from pathlib import Path
    if Path(args.csv).exists():
        raise SystemExit(f"{args.csv} exists; choose another --csv (this script never overwrites a file)")
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.csv, index=False)
    print(f"wrote {len(df)} rows of {df.patient.nunique()} patients to {args.csv}")
    raise SystemExit
torch.set_num_threads(1)

spec = ml.TableSpec(group="patient", target="response", time="visit")
tasks = ml.TableTasks.from_frame(df, spec, "train", shots=5, queries=10, fractions=(0.7, 0.15, 0.15), seed=0)
test = ml.TableTasks.from_frame(df, spec, "test", shots=5, queries=10, fractions=(0.7, 0.15, 0.15), seed=0)
torch.manual_seed(0)
maml = ml.MAML(ml.mlp(tasks.input_shape[0], [64, 64], 1), inner_lr=0.05, inner_steps=5)
with tempfile.TemporaryDirectory() as out:
    result = ml.meta_train(maml, tasks, out, steps=300 if args.short else 2000, meta_batch=16, lr=1e-3,
                           progress=not args.short)
print(f"meta-trained {result.step} steps on {len(tasks.groups)} patients")

# a new patient: adapt on their first 5 visits, predict the other 15
patient = test.all_groups[0]
support, query = test.split_for_eval(patient, 5, None)
learner = maml.adapt(patient.x[support], patient.y[support], steps=5)
frame = patient.frame.iloc[query.numpy()]
truth = frame["response"].to_numpy()
before = test.encoder.to_target(maml.adapt(patient.x[support], patient.y[support], steps=0)(patient.x[query]), frame)
after = test.encoder.to_target(learner(patient.x[query]), frame)
rmse = lambda p: float(np.sqrt(np.mean((p - truth) ** 2)))  # noqa: E731
print(f"patient {patient.name}: RMSE {rmse(before):.2f} before adaptation, {rmse(after):.2f} after 5 steps "
      f"on 5 visits")
