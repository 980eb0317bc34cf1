"""`python -m benchmarks.scheduling`: does the broker make Galaxy faster?

The scenario files given (default: every one in examples/scenarios/) with every policy, on the
discrete-event simulator (broker/sim/, docs/simulator.md): `--seeds N` seeds each (default 5, or
the SEEDS environment variable) starting at `--seed-start K` (default 0, or SEED_START), so that
the figures can be checked on seeds nobody tuned on; `--workers` processes (default: CPUs, or
BENCH_WORKERS). Progress with the time left goes to stderr when it is a terminal. The `broker`
policy is the real ranking code with its shipped settings; what-if variants of it
(BENCH_VARIANTS, default `broker:preference_level_s=0`) are printed for information and kept out
of the JSON line. So is the `oracle` (broker/sim/oracle.py), a reference that sees the
simulator's true state, and the per-scenario lower bound on the mean turnaround (fastest staging
+ run per job, no wait): they show the headroom, and no target is judged against them.
`oracle_fair` (broker/sim/oracle_fair.py: the true state without the negotiation phase or
foresight of failures) runs too, and is in the JSON line next to the routing policies, since the
decision-quality bar (below) is the gap from weighted random to it. Printed side by side, then
each target with its numbers, then the headroom, then JSON on the last line: {"scenarios":
{<scenario>: {<policy>: {"mean_turnaround_s", "p95_turnaround_s", "p99_turnaround_s",
"failed_attempts", "failed_jobs", "short_slowdown", "large_mean_turnaround_s", "bytes_km",
"carbon_g_per_job"}}},
"lower_bound_mean_turnaround_s": {<scenario>: seconds}}. Figures and the full summary:
benchmarks/results/simulate/.

Targets (the decision-quality bar), for every scenario: the broker's mean turnaround closes
at least 75% of the gap from weighted random to `oracle_fair`, its p95 at least 60% (where
`oracle_fair` is within 5% of weighted random, the gap is too small to measure: at most
`oracle_fair`'s instead; where it is worse still, at most weighted random's); its p99,
`short_slowdown`, `failed_attempts` and `failed_jobs` no worse than weighted random's;
`large_mean_turnaround_s` within 5% of it. The outcomes the
simulated broker learns from are still every attempt's, seen 10 min apart, not yet what the
deployed outcome collector delivers (docs/simulator.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from broker.sim.policies import POLICIES, REFERENCE_POLICIES
from broker.sim.report import aggregate, json_line, lower_bounds, table
from broker.sim.runner import parse_policy, run_all

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "examples" / "scenarios"
RESULTS = ROOT / "benchmarks" / "results" / "simulate"
SEEDS = int(os.environ.get("SEEDS", "5"))
SEED_START = int(os.environ.get("SEED_START", "0"))
VARIANTS = [v for v in os.environ.get("BENCH_VARIANTS", "broker:preference_level_s=0").split()]
WORKERS = int(os.environ["BENCH_WORKERS"]) if os.environ.get("BENCH_WORKERS") else None
JSON_POLICIES = (*POLICIES, "oracle_fair")  # the routing policies and the fair reference


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scheduling", description=__doc__)
    parser.add_argument("--seeds", type=int, default=SEEDS, help=f"seeds (default {SEEDS})")
    parser.add_argument(
        "--seed-start",
        type=int,
        default=SEED_START,
        metavar="K",
        help=f"first seed: runs K .. K+N-1 (default {SEED_START})",
    )
    parser.add_argument("--workers", type=int, default=WORKERS, help="processes (default CPUs)")
    parser.add_argument(
        "scenarios",
        nargs="*",
        type=Path,
        help="scenario files to judge (default: every examples/scenarios/*.yaml)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.seed_start < 0:
        parser.error("--seeds must be at least 1 and --seed-start at least 0")
    missing = [str(p) for p in args.scenarios if not p.is_file()]
    if missing:
        parser.error(f"no such scenario file: {', '.join(missing)}")
    args.scenarios = args.scenarios or sorted(SCENARIOS.glob("*.yaml"))
    return args


SMALL_GAP = 0.05  # oracle_fair within this of weighted random: the gap is too small to measure
CLOSE_MEAN, CLOSE_P95 = 0.75, 0.60  # share of the gap to oracle_fair the broker must close
LARGE_SLACK = 1.05  # large jobs' mean turnaround: within 5% of weighted random's


def _gap_target(pols: dict, ours: str, key: str, share: float) -> tuple[bool, str]:
    """Closes `share` of the gap from weighted random to oracle_fair on `key`; where the two
    are within SMALL_GAP of weighted random's figure, at most oracle_fair's instead (the bar's
    rule); where oracle_fair is worse than that, at most weighted random's (no gap to close)."""
    wr, fair, me = (pols[p][key] for p in ("weighted_random", "oracle_fair", ours))
    if fair > wr * (1 + SMALL_GAP):
        return me <= wr, f"{ours} {me:.0f} s, no gap: at most weighted_random's {wr:.0f} s"
    if abs(wr - fair) <= SMALL_GAP * wr:
        return me <= fair, f"{ours} {me:.0f} s, gap too small: at most oracle_fair's {fair:.0f} s"
    closed = (wr - me) / (wr - fair)
    return closed >= share, (
        f"{ours} {me:.0f} s closes {closed:.0%} of weighted_random {wr:.0f} s -> oracle_fair "
        f"{fair:.0f} s (needs {share:.0%})"
    )


def _at_most(pols: dict, ours: str, key: str, slack: float = 1.0) -> tuple[bool, str]:
    me, wr = pols[ours][key], pols["weighted_random"][key]
    if me is None or wr is None:  # no job of the class in the scenario
        return True, "no job of this class"
    limit = f" x {slack:g}" if slack != 1.0 else ""
    return me <= wr * slack, f"{ours} {me:.4g} vs weighted_random {wr:.4g}{limit}"


def targets(summary: dict, ours: str = "broker") -> list[tuple[str, bool, str]]:
    """(target, met, the numbers) of the decision-quality bar (module doc), per scenario, for
    policy `ours`."""
    out = []
    for scenario, pols in summary.items():
        checks = [
            ("mean: 75% of the gap", _gap_target(pols, ours, "mean_turnaround_s", CLOSE_MEAN)),
            ("p95: 60% of the gap", _gap_target(pols, ours, "p95_turnaround_s", CLOSE_P95)),
            ("p99 turnaround <= weighted random's", _at_most(pols, ours, "p99_turnaround_s")),
            ("short_slowdown <= weighted random's", _at_most(pols, ours, "short_slowdown")),
            (
                "large_mean_turnaround_s within 5% of weighted random's",
                _at_most(pols, ours, "large_mean_turnaround_s", LARGE_SLACK),
            ),
            ("failed_attempts <= weighted random's", _at_most(pols, ours, "failed_attempts")),
            ("failed_jobs <= weighted random's", _at_most(pols, ours, "failed_jobs")),
        ]  # fmt: skip
        out += [(f"{scenario}: {name}", ok, numbers) for name, (ok, numbers) in checks]
    return out


def headroom(summary: dict, bounds: dict[str, float]) -> list[str]:
    """How far below the best of TPV default and weighted random the broker, the references
    and the lower bound get on burst and data-heavy (information, not a target)."""
    out = []
    for scenario in ("burst", "data-heavy"):
        if scenario not in summary:
            continue
        pols = summary[scenario]
        base = min(("tpv_default", "weighted_random"), key=lambda p: pols[p]["mean_turnaround_s"])
        ref = pols[base]["mean_turnaround_s"]
        figures = [
            (p, pols[p]["mean_turnaround_s"]) for p in ("broker", *REFERENCE_POLICIES) if p in pols
        ]
        if scenario in bounds:
            figures.append(("lower bound", bounds[scenario]))
        out.append(
            f"  {scenario}: {base} {ref:.0f} s; "
            + ", ".join(f"{p} {v:.0f} s ({1 - v / ref:.0%} lower)" for p, v in figures)
        )
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = args.scenarios
    specs = [parse_policy(p) for p in (*POLICIES, *REFERENCE_POLICIES, *VARIANTS)]
    started = time.perf_counter()
    runs = run_all(paths, specs, args.seeds, args.workers, args.seed_start)
    elapsed = time.perf_counter() - started
    summary = aggregate(runs)
    bounds = lower_bounds(runs)
    print(table(summary, bounds))
    print()
    RESULTS.mkdir(parents=True, exist_ok=True)
    from broker.sim.plots import plot_scenario

    for scenario, pols in summary.items():
        plot_scenario([r for r in runs if r.scenario == scenario], pols, RESULTS)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    for ours in ("broker", *VARIANTS):
        print(f"targets for {ours}:")
        for name, ok, numbers in targets(summary, ours):
            print(f"  [{'met' if ok else 'NOT met'}] {name}: {numbers}")
    print("headroom (references: the oracle sees the true state; the lower bound is no wait):")
    print("\n".join(headroom(summary, bounds)))
    print(
        f"{len(paths)} scenarios x {len(specs)} policies x {args.seeds} seeds "
        f"({args.seed_start}..{args.seed_start + args.seeds - 1}) in {elapsed:.0f} s; "
        f"figures and summary.json under {RESULTS.relative_to(ROOT)}/"
    )
    print(json.dumps(json_line(summary, policies=JSON_POLICIES, bounds=bounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
