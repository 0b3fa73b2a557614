"""``metalearn federate PRESET --out DIR [--rounds R] [--strategy S] [--compare RUN] [--superlink HOST:PORT]
[--set ...]``."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..config import apply_overrides, load_preset, validate
from ..errors import ConfigError
from ..federated.deploy import deploy
from ..federated.fedmeta import STRATEGIES, FedEvaluation, compare_with, rounds_to_reach, validation_rows
from ..federated.flower_apps import evaluate_again, federate, plot_rounds
from ..runs import Run


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("federate", help="federated meta-learning on Flower: clients are Omniglot alphabets or "
                                        "the groups of a table")
    p.add_argument("preset", nargs="?", help="preset name or YAML config file (e.g. fed-omniglot-5w1s); not with "
                                             "--evaluate")
    p.add_argument("--out", type=Path, help="run folder (required unless --evaluate)")
    p.add_argument("--rounds", type=int, help="communication rounds (fed.rounds)")
    p.add_argument("--strategy", metavar="STRATEGY",
                   help=f"fed.strategy: {', '.join(STRATEGIES[:-1])} or {STRATEGIES[-1]}")
    p.add_argument("--compare", type=Path, metavar="RUN",
                   help="another federated run (same held-out clients): add the paired difference to it")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set fed.fraction=0.3 (repeatable)")
    p.add_argument("--evaluate", type=Path, metavar="RUN",
                   help="score a finished run's best checkpoint on its held-out clients again after eval.steps "
                        "(--set eval.steps=[1,10,100]); the run's own config otherwise")
    p.add_argument("--superlink", metavar="HOST:PORT",
                   help="deploy with `flwr run` on this running SuperLink and its SuperNodes (one per training client, "
                        "--node-config 'partition-id=N') instead of simulating them; the run folder is written on "
                        "the SuperLink's machine")
    p.add_argument("--nodes", type=int, help="with --superlink: SuperNodes to wait for before round 1 (fed.nodes; "
                                             "default one per training client)")
    p.add_argument("--root-certificates", type=Path, metavar="PEM",
                   help="with --superlink: the SuperLink's CA certificate (TLS); without it the connection is insecure")
    p.add_argument("--quiet", action="store_true", help="no per-round lines")


def run(args: argparse.Namespace) -> int:
    if args.evaluate is not None:
        if args.preset:
            raise ConfigError(f"--evaluate {args.evaluate} scores that run with its own config; drop {args.preset}")
        steps = validate(apply_overrides(Run.open(args.evaluate).load_config(), args.overrides)).eval.steps
        again = evaluate_again(args.evaluate, steps)
        if args.compare:
            base = FedEvaluation.load(Run.open(args.compare))
            again.paired[f"{again.strategy} - {base.strategy}"] = compare_with(again, base)
            again.save(Run(args.evaluate))
        print(again.table())
        return 0
    if not args.preset:
        raise ConfigError("name a federated preset (fed-omniglot-5w1s, fed-remifentanil, ...) or a YAML config file")
    if args.out is None:
        raise ConfigError("metalearn federate needs --out DIR, the run folder to write")
    overrides = list(args.overrides)
    if args.rounds is not None:
        overrides.append(f"fed.rounds={args.rounds}")
    if args.strategy is not None:
        overrides.append(f"fed.strategy={args.strategy}")
    if args.nodes is not None:
        overrides.append(f"fed.nodes={args.nodes}")
    if args.superlink is None and (args.nodes is not None or args.root_certificates is not None):
        raise ConfigError("--nodes and --root-certificates go with --superlink HOST:PORT (a deployed run)")
    cfg = validate(apply_overrides(load_preset(args.preset), overrides))
    other = FedEvaluation.load(Run.open(args.compare)) if args.compare else None
    torch.set_num_threads(cfg.train.threads)
    if args.superlink is not None:
        deployed = deploy(cfg, args.out, args.superlink, args.root_certificates)
        if deployed is None:
            print(f"the run finished on the SuperLink's machine: its run folder is {args.out.absolute()} there")
            return 0
        res = deployed
    else:
        res = federate(cfg, args.out, progress=not args.quiet)
    if other is not None:
        res.evaluation.paired[f"{res.evaluation.strategy} - {other.strategy}"] = compare_with(res.evaluation, other)
        res.evaluation.save(Run(args.out))
        plot_rounds(Run(args.out), [Run(args.compare)])
        key, theirs = validation_rows(Run(args.compare).read_metrics())
        ours = Run(args.out).read_metrics()   # none for a reference (central, own_data): nothing to reach
        if theirs and theirs[-1]["step"] > 0 and ours:
            final = theirs[-1][key]
            hit = rounds_to_reach(ours, final, res.evaluation.higher_is_better)
            print(f"{other.strategy}'s final validation {key[4:]} {final:.2f} (round {theirs[-1]['step']}, "
                  f"{theirs[-1]['bytes'] / 1e6:.1f} MB): " + (f"reached at round {hit[0]} ({hit[1] / 1e6:.1f} MB)"
                                                              if hit else "not reached") + "\n")
    print(res.evaluation.table())
    best = ("" if res.best_val != res.best_val   # a reference (central, own_data) is not validated per round
            else f", best validation {res.evaluation.metric} {res.best_val:.2f} at round {res.best_round}")
    print(f"\n{res.rounds} rounds in {res.seconds:.0f} s{best}; saved {res.evaluation.path} (and .md)")
    return 0
