"""``metalearn adapt RUN --support DIR|FILE --query DIR|FILE [--out predictions.csv]``: adapt a
meta-trained model to the user's own examples, with the adapter its task family declares
(:mod:`metalearn.evaluation.adapters`). Image runs take folders (one subfolder of images per class)
and classify the query images; grouped-table runs take CSV or Parquet files of one new group's rows
(support rows with their targets, query rows without) and predict the query rows."""
from __future__ import annotations

import argparse
from pathlib import Path

from .._util.files import atomic_write_text, check_writable_file
from ..evaluation.adapters import AdaptOptions, adapter_for
from ..runs import Run


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
    check_writable_file(args.out)   # before adapting, not after
    adapter = adapter_for(run_dir.load_config())
    prediction = adapter.adapt(run_dir, args.support, args.query, AdaptOptions(args.steps, args.invert, args.resize))
    atomic_write_text(args.out, prediction.csv)
    for line in prediction.lines(args.out):
        print(line)
    return 0
