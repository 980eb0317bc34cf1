"""ARBO decision-quality benchmark: synthetic tasks with known truth, four ways to pick ``s``.

Run with ``python -m benchmarks.arbo`` (about a minute or two). For iteration,
``--seeds 1`` (one seed), ``--methods ours`` (skip the baselines; the targets are then not
judged), ``--objectives cheapest_within_time`` (a subset of the tasks) and ``--verbose`` (per-task
figures) shorten or detail a run; the defaults are the reported benchmark.

Each task has a true run time

    T(s, x, L) = (c + T1 (x/x0)^k ((1-p) + p/s) + o s) (1 + beta L) exp(eps),  eps ~ N(0, sigma^2)

with the parallel fraction p from 0.5 to 0.99, a start-up overhead c, a per-worker coordination
cost o (which Amdahl's law does not have: the residual GP must find it), input sizes x and
cluster load L that change from run to run, and lognormal noise. Every task runs 30 times with
one of the four objectives; the same random draws (sizes, loads, noise) are replayed for every
method, so the methods differ only in the ``s`` they pick.
The tasks and their oracle are in ``benchmarks.arbo_tasks``, the four methods (the broker's
estimator and three baselines) in ``benchmarks.arbo_methods``; this module runs and scores them.

Figures per method (all averaged over tasks, lower is better):
  regret              cumulative over the 30 runs of the relative gap to the oracle, which knows
                      the truth: max(0, f(s)/f(s*) - 1) + max(0, g(s) - max(1, g(s*))), f the
                      expected objective (seconds or cost), g the SLO use at the confidence
                      quantile (1 = exactly at the limit); s* the oracle's choice.
  slo_violation_rate  realised duration or cost above the SLO limit, pooled over the SLO tasks'
                      runs after the first 5, counting only runs where the oracle can meet the
                      SLO at the asked confidence (otherwise nobody can).
  runs_to_within_5pct first run from which three consecutive choices are within 5 % of the
                      oracle (regret <= 0.05); 31 when never.
The JSON on the last line holds these three figures per method.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.arbo_methods import BASELINES, METHODS, is_rebaseline_run
from benchmarks.arbo_plots import plot_task
from benchmarks.arbo_tasks import (
    MAX_S,
    N_RUNS,
    OBJECTIVES,
    Task,
    has_slo,
    make_tasks,
    objective_value,
    oracle,
    slo_use,
)
from benchmarks.seeds import add_seeds_argument, parse_seeds

WARMUP = 5
DEFAULT_SEEDS = "1-2"


def run_task(task: Task, method_cls) -> dict:
    method = method_cls(task.goal)
    truth, goal = task.truth, task.goal
    regrets, choices, violations, counted = [], [], 0, 0
    for t in range(N_RUNS):
        x, load = float(task.sizes[t]), float(task.loads[t])
        s = int(np.clip(method.choose(x, load), 1, MAX_S))
        seconds = float(truth.median(s, x, load) * math.exp(task.noise[t]))
        best = oracle(goal, truth, x, load)
        f, f_best = objective_value(goal, truth, [s, best], x, load)
        regret = max(0.0, f / f_best - 1)
        if has_slo(goal):
            g, g_best = slo_use(goal, truth, [s, best], x, load)
            regret += max(0.0, g - max(1.0, g_best))
            if t >= WARMUP and g_best <= 1:
                counted += 1
                over = goal.max_seconds is not None and seconds > goal.max_seconds
                over |= goal.max_cost is not None and s * goal.price * seconds > goal.max_cost
                violations += int(over)
        regrets.append(regret)
        choices.append(s)
        method.observe(s, seconds, x, load)
    within = [r <= 0.05 for r in regrets]
    # the same sum without the runs where the re-baseline variant is forced to s=1
    excl = sum(r for t, r in enumerate(regrets) if not is_rebaseline_run(t))
    first = next(
        (t + 1 for t in range(N_RUNS - 2) if within[t] and within[t + 1] and within[t + 2]),
        N_RUNS + 1,
    )
    return {
        "regret": sum(regrets),
        "regret_excl_rebaseline": excl,
        "violations": violations,
        "counted": counted,
        "first": first,
        "choices": choices,
    }


NON_TRIVIAL = ("fastest", "cheapest_within_time", "fastest_within_cost")


def summarise(results: list[dict], tasks: list[Task]) -> dict:
    counted = sum(r["counted"] for r in results)
    out = {
        "regret": round(float(np.mean([r["regret"] for r in results])), 4),
        "slo_violation_rate": round(sum(r["violations"] for r in results) / max(counted, 1), 4),
        "runs_to_within_5pct": round(float(np.mean([r["first"] for r in results])), 2),
        "regret_excl_rebaseline_runs": round(
            float(np.mean([r["regret_excl_rebaseline"] for r in results])), 4
        ),
    }
    return out


def targets(per_objective: dict, summary: dict) -> dict[str, bool]:
    """The Bar: on each non-trivial objective ours <= half the best baseline; SLO <= 5 %."""
    verdict = {}
    for objective in NON_TRIVIAL:
        rows = per_objective.get(objective, {})
        if "ours" in rows and all(b in rows for b in BASELINES):
            best = min(rows[b]["regret"] for b in BASELINES)
            verdict[f"{objective}_regret_at_most_half_best_baseline"] = (
                rows["ours"]["regret"] <= 0.5 * best
            )
    if "ours" in summary:
        verdict["slo_violations_at_most_5pct"] = summary["ours"]["slo_violation_rate"] <= 0.05
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_seeds_argument(parser, DEFAULT_SEEDS)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES), help="comma-separated")
    parser.add_argument("--verbose", action="store_true", help="per-task figures")
    parser.add_argument("--plot", metavar="DIR", help="one time-cost Pareto figure per task")
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    unknown = [m for m in args.methods.split(",") if m not in METHODS]
    unknown += [o for o in args.objectives.split(",") if o not in OBJECTIVES]
    if unknown:
        parser.error(f"unknown method or objective: {', '.join(unknown)}")
    methods = {name: METHODS[name] for name in args.methods.split(",")}
    objectives = args.objectives.split(",")
    started = time.monotonic()
    tasks = [task for seed in seeds for task in make_tasks(seed)]
    tasks = [task for task in tasks if task.goal.objective in objectives]
    summary: dict = {}
    per_objective: dict = {o: {} for o in objectives}
    for name, cls in methods.items():
        results = [run_task(task, cls) for task in tasks]
        summary[name] = summarise(results, tasks)
        for objective in objectives:
            mine = [
                (r, t) for r, t in zip(results, tasks, strict=True) if t.goal.objective == objective
            ]
            fig = summarise([r for r, _ in mine], [t for _, t in mine])
            per_objective[objective][name] = {
                "regret": fig["regret"],
                "slo_violation_rate": fig["slo_violation_rate"],
            }
        print(
            f"{name:16s} regret {summary[name]['regret']:8.3f}  "
            f"slo_violation_rate {summary[name]['slo_violation_rate']:.3f} "
            f"({sum(r['violations'] for r in results)}/{sum(r['counted'] for r in results)})  "
            f"runs_to_within_5pct {summary[name]['runs_to_within_5pct']:5.2f}  "
            f"regret excl. re-baseline runs {summary[name]['regret_excl_rebaseline_runs']:.3f}"
        )
        print(
            "    regret by objective: "
            + ", ".join(f"{o} {per_objective[o][name]['regret']:.2f}" for o in objectives)
        )
        if args.verbose:
            for r, t in zip(results, tasks, strict=True):
                print(
                    f"  {t.name:40s} regret {r['regret']:7.3f}  violations "
                    f"{r['violations']}/{r['counted']}  s {r['choices']}"
                )
        if args.plot and name == "ours":
            for r, t in zip(results, tasks, strict=True):
                plot_task(t, r["choices"], Path(args.plot))
            print(f"    {len(tasks)} Pareto figures written to {args.plot}")
    verdict = targets(per_objective, summary)
    elapsed = time.monotonic() - started
    print(f"{len(tasks)} tasks x {N_RUNS} runs, seeds {seeds}, in {elapsed:.0f} s")
    for objective in NON_TRIVIAL:
        rows = per_objective.get(objective, {})
        if "ours" in rows and all(b in rows for b in BASELINES):
            best = min(rows[b]["regret"] for b in BASELINES)
            print(
                f"  {objective}: ours {rows['ours']['regret']:.3f} = "
                f"{rows['ours']['regret'] / best:.2f} x best baseline ({best:.3f})"
            )
    for key, ok in verdict.items():
        print(f"  target {key}: {'met' if ok else 'NOT met'}")
    report = {**summary, "per_objective": per_objective, "seeds": seeds, "targets": verdict}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
