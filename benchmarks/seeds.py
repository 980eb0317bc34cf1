"""The ``--seeds`` argument shared by the decision-quality benchmarks.

Seeds are given by the caller so that a result can be checked on seeds nobody tuned on:
``--seeds 11 12 13`` (a list), ``--seeds 11-20`` (an inclusive range), or a mix
(``--seeds 1,2 30-32``); commas and spaces both separate.
"""

from __future__ import annotations

import argparse


def parse_seeds(values: list[str] | str) -> list[int]:
    """The seeds named by ``values``, in the order given, without repeats."""
    if isinstance(values, str):
        values = [values]
    seeds: list[int] = []
    for token in (t for v in values for t in v.replace(",", " ").split()):
        try:
            first, _, last = token.partition("-")
            lo = int(first)
            hi = int(last) if last else lo
            if lo < 0 or hi < lo:
                raise ValueError
            seeds.extend(range(lo, hi + 1))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--seeds: {token!r} is neither a seed (an integer >= 0) nor a range like 11-20"
            ) from None
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds: no seed given")
    return list(dict.fromkeys(seeds))


def add_seeds_argument(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--seeds",
        nargs="+",
        default=[default],
        metavar="SEED",
        help=f"seeds to run: a list (11 12 13), a range (11-20) or both (default {default})",
    )
