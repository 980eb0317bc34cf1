"""`tpv-broker simulate SCENARIO.yaml [--policies ...] [--seeds N --seed-start K] [--plot DIR]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from broker.sim.policies import POLICIES, REFERENCE_POLICIES

HELP = "simulate a scenario with each routing policy and compare (docs/simulator.md)"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("simulate", help=HELP, description=HELP)
    p.add_argument("scenario", nargs="+", help="scenario YAML file(s) (examples/scenarios/)")
    p.add_argument(
        "--policies",
        nargs="+",
        default=list(POLICIES),
        metavar="POLICY",
        help=f"policies to compare (default: all: {' '.join(POLICIES)}); a what-if broker: "
        "'broker:preference_level_s=0'; the omniscient reference: "
        f"{' '.join(REFERENCE_POLICIES)} (docs/simulator.md)",
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds per scenario (default 1)")
    p.add_argument(
        "--seed-start",
        type=int,
        default=0,
        metavar="K",
        help="first seed: runs seeds K .. K+N-1 (default 0), e.g. to check on seeds nobody "
        "tuned on",
    )
    p.add_argument("--plot", metavar="DIR", help="write PNG figures to DIR")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from broker.sim.report import JSON_KEYS, aggregate, json_line, lower_bounds, table
    from broker.sim.runner import parse_policy, run_all
    from broker.sim.scenario import ScenarioError

    if args.seeds < 1:
        print("tpv-broker: --seeds must be at least 1", file=sys.stderr)
        return 2
    if args.seed_start < 0:
        print("tpv-broker: --seed-start must be at least 0", file=sys.stderr)
        return 2
    try:
        specs = [parse_policy(p) for p in args.policies]
        runs = run_all(args.scenario, specs, args.seeds, args.workers, args.seed_start)
    except (ScenarioError, ValueError) as exc:
        print(f"tpv-broker: {exc}", file=sys.stderr)
        return 2
    summary = aggregate(runs)
    bounds = lower_bounds(runs)
    print(table(summary, bounds))
    if args.plot:
        from broker.sim.plots import plot_scenario

        for scenario, pols in summary.items():
            mine = [r for r in runs if r.scenario == scenario]
            for path in plot_scenario(mine, pols, Path(args.plot)):
                print(f"wrote {path}")
    keys = (*JSON_KEYS, "mean_queue_wait_s", "unfinished_jobs", "utilisation")
    print(json.dumps(json_line(summary, keys, bounds=bounds)))
    return 0
