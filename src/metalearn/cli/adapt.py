"""``metalearn adapt RUN --support DIR|FILE --query DIR|FILE [--out predictions.csv]``: adapt a
meta-trained model to the user's own examples. Image runs take folders (one subfolder of images per
class) and classify the query images; grouped-table runs take CSV or Parquet files of one new
group's rows (support rows with their targets, query rows without) and predict the query rows."""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import torch

from .._util.files import atomic_write_text
from ..data.image_folder import load_episode_folders
from ..data.tables import read_table
from ..errors import ConfigError
from ..evaluation.adaptation import load_algorithm
from ..evaluation.predict import predict_table
from ..protocols import declared
from ..runs import Run
from ..tasks import get_task_family


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapt", help="adapt a meta-trained model to your own examples (images or table rows)")
    p.add_argument("run", type=Path, help="run folder of an image-classification or grouped-table run")
    p.add_argument("--support", type=Path, required=True,
                   help="images: a folder with one subfolder per class; tables: a CSV/Parquet of rows with targets")
    p.add_argument("--query", type=Path, required=True,
                   help="images: a folder of images to classify (class subfolders, if present, give accuracy); "
                        "tables: a CSV/Parquet of rows to predict")
    p.add_argument("--out", type=Path, default=Path("predictions.csv"), help="CSV to write")
    p.add_argument("--steps", type=int, default=None,
                   help="inner steps (default: 10 for images, the run's algo.inner_steps for tables)")
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="invert grey levels (auto: when images have a light background)")
    p.add_argument("--resize", action="store_true", help="accept images of different sizes")


def run(args: argparse.Namespace) -> int:
    run_dir = Run.open(args.run)
    cfg = run_dir.load_config()
    accepts = declared(get_task_family(cfg.task.family).cls, "adapt_input")
    if accepts == "table_rows":
        return _adapt_table(args)
    if accepts != "image_folders":
        raise ConfigError(f"metalearn adapt takes folders of images or table files; a "
                          f"{cfg.task.family} run adapts through the Python API (Algorithm.adapt)")
    if args.steps is None:
        args.steps = 10
    if args.steps < 0:
        raise ConfigError(f"--steps must be >= 0, got {args.steps}")
    names, xs, ys, q_files, xq, yq = load_episode_folders(
        args.support, args.query, cfg.task.image_size, cfg.task.channels, args.invert, args.resize)
    if len(names) > cfg.task.ways:
        raise ConfigError(f"the support folder has {len(names)} classes but the model was meta-trained "
                          f"for {cfg.task.ways}-way tasks; use at most {cfg.task.ways} classes")
    algo = load_algorithm(run_dir, cfg)
    learner = algo.adapt(xs, ys, steps=args.steps)
    probs = torch.softmax(learner(xq)[:, :len(names)], dim=-1)
    pred = probs.argmax(-1)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["image", "predicted", *[f"p_{n}" for n in names]])
    for f, p, row in zip(q_files, pred.tolist(), probs.tolist()):
        w.writerow([str(f), names[p], *[f"{v:.4f}" for v in row]])
    atomic_write_text(args.out, buf.getvalue())
    print(f"adapted to {len(names)} classes ({', '.join(names)}) from {len(ys)} support images in "
          f"{args.steps} steps; wrote {len(q_files)} predictions to {args.out}")
    if yq is not None:
        print(f"query accuracy: {100 * (pred == yq).float().mean():.1f}% ({int((pred == yq).sum())}/{len(yq)})")
    return 0


def _adapt_table(args: argparse.Namespace) -> int:
    for name, path in (("--support", args.support), ("--query", args.query)):
        if not path.is_file():
            raise ConfigError(f"{name} {path} is not a file; a table run adapts to a CSV or Parquet file of rows")
    support, query = read_table(args.support), read_table(args.query)
    result = predict_table(args.run, support, query, args.steps, str(args.support), str(args.query))
    atomic_write_text(args.out, result.to_csv(index=False))
    target = [c for c in result.columns if c.startswith("predicted_")][0]
    print(f"adapted to {len(support)} support rows of {args.support}; wrote {len(query)} predictions "
          f"({target}) to {args.out}")
    return 0
