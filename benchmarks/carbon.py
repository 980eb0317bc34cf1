"""`python -m benchmarks.carbon`: what a price on carbon costs in turnaround, and what it saves.

The broker with `ranking.carbon_s_per_kg` at 0 (the shipped default) and at each rate of
`--rates` (default 1000 10000 100000 s/kg), and weighted random (today's policy) for reference,
on the simulator (docs/simulator.md), with the grid intensities and power figures of the
scenarios' sites (examples/scenarios/calm-day.yaml, which every scenario extends): `--seeds N`
seeds (default 3) from `--seed-start K` (default 0), the scenarios given (default calm-day and
data-heavy). Printed per scenario: mean and p95 turnaround and g CO2eq per job, each against the
unpriced broker, and the price the turnaround actually paid: seconds of mean turnaround per kg
saved. JSON on the last line: {"scenarios": {<scenario>: {<policy>: {"mean_turnaround_s",
"p95_turnaround_s", "carbon_g_per_job"}}}}. No target: the exchange rate is the administrator's
choice, and this shows what each buys.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from broker.sim.report import aggregate, json_line
from broker.sim.runner import parse_policy, run_all

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = [ROOT / "examples" / "scenarios" / f"{n}.yaml" for n in ("calm-day", "data-heavy")]
KEYS = ("mean_turnaround_s", "p95_turnaround_s", "carbon_g_per_job")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.carbon", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="seeds (default 3)")
    parser.add_argument("--seed-start", type=int, default=0, metavar="K", help="first seed")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[1000, 10000, 100000], help="s per kg CO2eq"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default CPUs)")
    parser.add_argument("scenarios", nargs="*", type=Path, help="scenario files")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.seed_start < 0 or any(r <= 0 for r in args.rates):
        parser.error("need --seeds >= 1, --seed-start >= 0 and every rate above 0")
    missing = [str(p) for p in args.scenarios if not p.is_file()]
    if missing:
        parser.error(f"no such scenario file: {', '.join(missing)}")
    args.scenarios = args.scenarios or SCENARIOS
    return args


def label(rate: float) -> str:
    return f"broker:carbon_s_per_kg={rate:g}"


def trade_off(policies: dict[str, dict[str, float]], rates: list[float]) -> list[str]:
    """One scenario's lines: each policy's figures against the unpriced broker's."""
    base = policies["broker"]
    lines = [
        f"{'policy':<34}{'mean (s)':>10}{'vs 0':>8}{'p95 (s)':>10}{'vs 0':>8}"
        f"{'g CO2/job':>11}{'vs 0':>8}{'s per kg saved':>16}"
    ]
    for name in ("weighted_random", "broker", *(label(r) for r in rates)):
        v = policies[name]
        saved_kg = (base["carbon_g_per_job"] - v["carbon_g_per_job"]) / 1000
        paid_s = v["mean_turnaround_s"] - base["mean_turnaround_s"]
        per_kg = "-"
        if name != "broker" and saved_kg > 0:
            per_kg = f"{paid_s / saved_kg:.0f}" if paid_s > 0 else "free"
        lines.append(
            f"{name:<34}{v['mean_turnaround_s']:>10.0f}"
            f"{_change(v, base, 'mean_turnaround_s'):>8}{v['p95_turnaround_s']:>10.0f}"
            f"{_change(v, base, 'p95_turnaround_s'):>8}{v['carbon_g_per_job']:>11.2f}"
            f"{_change(v, base, 'carbon_g_per_job'):>8}{per_kg:>16}"
        )
    return lines


def _change(v: dict[str, float], base: dict[str, float], key: str) -> str:
    if not base[key] or math.isnan(base[key]):
        return "-"
    return f"{(v[key] / base[key] - 1) * 100:+.1f}%"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    specs = [parse_policy(p) for p in ("weighted_random", "broker", *map(label, args.rates))]
    runs = run_all(args.scenarios, specs, args.seeds, args.workers, args.seed_start)
    summary = aggregate(runs)
    for scenario, policies in summary.items():
        if math.isnan(policies["broker"]["carbon_g_per_job"]):
            print(f"{scenario}: no site has a carbon intensity; nothing to trade", file=sys.stderr)
            return 1
        last = args.seed_start + args.seeds - 1
        print(f"== {scenario} (seeds {args.seed_start}-{last}, means over seeds)")
        print("\n".join(trade_off(policies, args.rates)))
        print()
    print("vs 0: against the broker without a price on carbon (the shipped default).")
    print("s per kg saved: seconds of mean turnaround each kg of CO2eq saved cost (free: none).")
    print(json.dumps(json_line(summary, KEYS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
