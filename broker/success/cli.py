"""The `eval-success` and `compat-experiment` subcommands' parsers; the work is in
broker/success/eval.py and compat_report.py, imported only when the subcommand runs
(scikit-learn is slow to import and other subcommands do not need it)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from broker.success.eval import cmd_eval_success

    return cmd_eval_success(args)


def _run_compat(args: argparse.Namespace) -> int:
    from broker.success.compat_report import cmd_compat_experiment

    return cmd_compat_experiment(args)


def add_parser(sub) -> None:
    ev = sub.add_parser(
        "eval-success",
        help="cross-validate the success model against CategoricalNB on per-package CSVs",
    )
    ev.add_argument("dir", help="directory of per-package CSVs (spec, feature columns, outcome)")
    ev.add_argument("--folds", type=int, default=10, help="k of the stratified k-fold (10)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the fold shuffling (0)")
    ev.set_defaults(func=_run)
    cx = sub.add_parser(
        "compat-experiment",
        help="match build specs to random clusters with growing compatibility metadata and "
        "score the assignments with the per-package success models (docs/compat-experiment.md)",
    )
    cx.add_argument("dir", help="directory of per-package CSVs (spec, feature columns, outcome)")
    cx.add_argument("--clusters", type=int, default=1000, help="random clusters (1000)")
    cx.add_argument("--seed", type=int, default=0, help="seed of clusters, order, picks (0)")
    cx.add_argument("--plot", metavar="OUT", help="write the curves to this PNG")
    cx.set_defaults(func=_run_compat)
