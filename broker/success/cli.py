"""The `eval-success` subcommand's parser; the work is in broker/success/eval.py, imported only
when the subcommand runs (scikit-learn is slow to import and other subcommands do not need it)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from broker.success.eval import cmd_eval_success

    return cmd_eval_success(args)


def add_parser(sub) -> None:
    ev = sub.add_parser(
        "eval-success",
        help="cross-validate the success model against CategoricalNB on per-package CSVs",
    )
    ev.add_argument("dir", help="directory of per-package CSVs (spec, feature columns, outcome)")
    ev.add_argument("--folds", type=int, default=10, help="k of the stratified k-fold (10)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the fold shuffling (0)")
    ev.set_defaults(func=_run)
