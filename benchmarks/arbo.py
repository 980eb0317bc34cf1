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

import numpy as np

from benchmarks.arbo_methods import METHODS
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

WARMUP = 5
SEEDS = (1, 2)


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
    first = next(
        (t + 1 for t in range(N_RUNS - 2) if within[t] and within[t + 1] and within[t + 2]),
        N_RUNS + 1,
    )
    return {
        "regret": sum(regrets),
        "violations": violations,
        "counted": counted,
        "first": first,
        "choices": choices,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES), help="comma-separated")
    parser.add_argument("--verbose", action="store_true", help="per-task figures")
    args = parser.parse_args(argv)
    seeds = [int(v) for v in args.seeds.split(",")]
    methods = {name: METHODS[name] for name in args.methods.split(",")}
    objectives = args.objectives.split(",")
    started = time.monotonic()
    tasks = [task for seed in seeds for task in make_tasks(seed)]
    tasks = [task for task in tasks if task.goal.objective in objectives]
    summary = {}
    for name, cls in methods.items():
        results = [run_task(task, cls) for task in tasks]
        counted = sum(r["counted"] for r in results)
        summary[name] = {
            "regret": round(float(np.mean([r["regret"] for r in results])), 4),
            "slo_violation_rate": round(sum(r["violations"] for r in results) / max(counted, 1), 4),
            "runs_to_within_5pct": round(float(np.mean([r["first"] for r in results])), 2),
        }
        by_objective = {}
        for objective in objectives:
            mine = [
                r["regret"]
                for r, t in zip(results, tasks, strict=True)
                if t.goal.objective == objective
            ]
            by_objective[objective] = float(np.mean(mine))
        print(
            f"{name:14s} regret {summary[name]['regret']:8.3f}  "
            f"slo_violation_rate {summary[name]['slo_violation_rate']:.3f} "
            f"({sum(r['violations'] for r in results)}/{counted})  "
            f"runs_to_within_5pct {summary[name]['runs_to_within_5pct']:5.2f}  "
            "regret by objective: " + ", ".join(f"{k} {v:.2f}" for k, v in by_objective.items())
        )
        if args.verbose:
            for r, t in zip(results, tasks, strict=True):
                print(
                    f"  {t.name:40s} regret {r['regret']:7.3f}  violations "
                    f"{r['violations']}/{r['counted']}  s {r['choices']}"
                )
    line = f"{len(tasks)} tasks x {N_RUNS} runs in {time.monotonic() - started:.0f} s"
    if set(("ours", "fixed", "arbo_original", "ernest")) <= set(summary):
        baselines = [summary[m]["regret"] for m in ("fixed", "arbo_original", "ernest")]
        regret_ok = summary["ours"]["regret"] <= 0.5 * min(baselines)
        slo_ok = summary["ours"]["slo_violation_rate"] <= 0.05
        line += (
            f"; targets: regret <= half of the best baseline ({min(baselines):.3f}): "
            f"{'met' if regret_ok else 'NOT met'}; SLO violations <= 5% after run {WARMUP}: "
            f"{'met' if slo_ok else 'NOT met'}"
        )
    print(line)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
