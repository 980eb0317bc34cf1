"""Summaries of simulation results: per run, then over seeds; a side-by-side table; JSON."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from broker.sim.policies import REFERENCE_POLICIES
from broker.sim.pools import Task
from broker.sim.results import Result

# The lower bound's key in the JSON line: top level, {scenario: seconds}, next to "scenarios",
# so that every entry of a scenario under "scenarios" stays a policy with its figures.
LOWER_BOUND_KEY = "lower_bound_mean_turnaround_s"

# The job classes of the per-class figures. A job's lower bound is `oracle.job_lower_bound_s`:
# its fastest true staging + run time over its TPV candidates, with no queue wait, no
# negotiation delay and no failure (what it would take on an empty network).
SHORT_BOUND_S = 600.0  # a short job: its lower bound is under 10 minutes
LARGE_CORES = 16  # a large job: it asks for 16 cores or more

# What the benchmark's JSON carries per policy, and what the table adds.
JSON_KEYS = (
    "mean_turnaround_s",
    "p95_turnaround_s",
    "p99_turnaround_s",
    "failed_attempts",
    "failed_jobs",
    "short_slowdown",
    "large_mean_turnaround_s",
    "bytes_km",
    "carbon_g_per_job",
)
COLUMNS = (
    ("mean_turnaround_s", "mean (s)", "{:.0f}"),
    ("p95_turnaround_s", "p95 (s)", "{:.0f}"),
    ("p99_turnaround_s", "p99 (s)", "{:.0f}"),
    ("short_slowdown", "short slowd.", "{:.2f}"),
    ("large_mean_turnaround_s", "large mean (s)", "{:.0f}"),
    ("mean_queue_wait_s", "queue wait (s)", "{:.0f}"),
    ("mean_transfer_s", "staging (s)", "{:.0f}"),
    ("bytes_km", "TB x km", None),
    ("carbon_g_per_job", "g CO2/job", "{:.1f}"),
    ("failed_attempts", "failed att.", "{:.1f}"),
    ("failed_jobs", "failed jobs", "{:.1f}"),
    ("unfinished_jobs", "unfinished", "{:.1f}"),
    ("utilisation", "util.", "{:.2f}"),
)
CELL = 15  # width of a table cell
CLASS_KEYS = ("short_slowdown", "large_mean_turnaround_s")  # NaN in a seed without such a job


def is_short(lower_bound_s: float) -> bool:
    """A short job: even on an empty network it takes under `SHORT_BOUND_S`."""
    return lower_bound_s < SHORT_BOUND_S


def is_large(cores: int) -> bool:
    """A large (whole-machine-like) job: `LARGE_CORES` cores or more."""
    return cores >= LARGE_CORES


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def class_figures(result: Result, bounds: Mapping[int, float] | None) -> dict[str, float]:
    """`short_slowdown`: the mean over the short jobs that succeeded of turnaround / lower
    bound (1 is as fast as the network allows; NaN without `bounds` or without such a job);
    `large_mean_turnaround_s`: the mean turnaround of the large jobs that succeeded (NaN
    without one). `bounds` maps a job id to its lower bound (`oracle.job_lower_bound_s`)."""
    ok = [r for r in result.records if r.outcome == "ok"]
    slowdown = (
        [r.turnaround / bounds[r.job.id] for r in ok if is_short(bounds[r.job.id])]
        if bounds is not None
        else []
    )
    large = [r.turnaround for r in ok if r.attempts and is_large(r.attempts[0].cores)]
    return {"short_slowdown": _mean(slowdown), "large_mean_turnaround_s": _mean(large)}


def summarize(result: Result, bounds: Mapping[int, float] | None = None) -> dict[str, float]:
    """One run: turnaround (submit -> successful finish) over the jobs that succeeded, its
    mean, p95 and p99, and the per-class figures (`class_figures`, which need the jobs' lower
    `bounds`); failed and unfinished jobs are counted, not hidden; every attempt's waits,
    transfers and moves."""
    ok = np.array([r.turnaround for r in result.records if r.outcome == "ok"])
    waits, transfers, bytes_km, failed, kg = [], [], 0.0, 0, 0.0
    for r in result.records:
        wait = 0.0
        for a in r.attempts:
            if not math.isnan(a.started):
                wait += a.started - a.staged
                kg += _attempt_kg(a, result.kg_per_s)
            bytes_km += a.bytes_km
            failed += a.state == "lost" or (a.state == "done" and a.fails)
        waits.append(wait)
        transfers.append(sum(a.transfer_s for a in r.attempts))
    return {
        "jobs": len(result.records),
        "mean_turnaround_s": float(ok.mean()) if ok.size else math.nan,
        "p95_turnaround_s": float(np.percentile(ok, 95)) if ok.size else math.nan,
        "p99_turnaround_s": float(np.percentile(ok, 99)) if ok.size else math.nan,
        **class_figures(result, bounds),
        "mean_queue_wait_s": float(np.mean(waits)) if waits else 0.0,
        "mean_transfer_s": float(np.mean(transfers)) if transfers else 0.0,
        "bytes_km": bytes_km,
        # every attempt that ran, failed and lost ones too; NaN: no site's intensity is known
        "carbon_g_per_job": kg * 1000 / len(result.records)
        if result.kg_per_s and result.records
        else math.nan,
        "failed_attempts": failed,
        "failed_jobs": sum(r.outcome == "failed" for r in result.records),
        "unfinished_jobs": sum(r.outcome == "unfinished" for r in result.records),
        "utilisation": result.utilisation,
        "rank_calls": result.rank_calls,
    }


def _attempt_kg(task: Task, kg_per_s: Mapping[str, tuple[float, float]]) -> float:
    """kg CO2eq of one attempt, from its start to its end (or its loss in an outage)."""
    per_core, per_gpu = kg_per_s.get(task.site, (0.0, 0.0))
    if math.isnan(task.ended):
        return 0.0  # still running when the simulation stopped
    return (task.ended - task.started) * (task.cores * per_core + task.gpus * per_gpu)


def over_seeds(runs: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each figure over seeds (over the seeds that have it: a seed without a large
    job has no large-job mean), plus the spread of the mean turnaround."""
    out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    with warnings.catch_warnings():  # a figure no seed has stays NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        out.update({k: float(np.nanmean([r[k] for r in runs])) for k in CLASS_KEYS})
    means = [r["mean_turnaround_s"] for r in runs]
    out["mean_turnaround_sd_s"] = float(np.std(means, ddof=1)) if len(means) > 1 else 0.0
    out["seeds"] = len(runs)
    return out


def aggregate(runs) -> dict[str, dict[str, dict[str, float]]]:
    """{scenario: {policy: summary over seeds}} from `runner.RunSummary`s, in the order first
    seen."""
    grouped: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        grouped[r.scenario][r.policy].append(r.summary)
    return {s: {p: over_seeds(runs) for p, runs in pol.items()} for s, pol in grouped.items()}


def lower_bounds(runs) -> dict[str, float]:
    """{scenario: mean over seeds of the lower bound on the mean turnaround} from
    `runner.RunSummary`s (`oracle.lower_bound_s`: the same for every policy of a seed)."""
    per_seed: dict[str, dict[int, float]] = defaultdict(dict)
    for r in runs:
        per_seed[r.scenario][r.seed] = r.lower_bound_s
    return {s: float(np.mean(list(seeds.values()))) for s, seeds in per_seed.items()}


def _round(value: float) -> float | None:
    if math.isnan(value):
        return None  # JSON has no NaN: a figure without a job to measure (e.g. no large job)
    return round(value, 3) if abs(value) < 10 else round(value, 1)


def json_line(summary: dict, keys: tuple[str, ...] = JSON_KEYS, policies=None, bounds=None) -> dict:
    """{"scenarios": {scenario: {policy: {key: value}}}}; with `bounds` (`lower_bounds`), also
    {LOWER_BOUND_KEY: {scenario: seconds}} at the top level."""
    line: dict = {
        "scenarios": {
            s: {
                p: {k: _round(v[k]) for k in keys}
                for p, v in pol.items()
                if policies is None or p in policies
            }
            for s, pol in summary.items()
        }
    }
    if bounds:
        line[LOWER_BOUND_KEY] = {
            s: _round(bounds[s])  # None: no measured job
            for s in summary
            if s in bounds
        }
    return line


def table(summary: dict, bounds: dict[str, float] | None = None) -> str:
    """Side by side per scenario. The lowest mean turnaround among the routing policies is
    starred (the references, e.g. the oracle, are not); with `bounds`, a last line per
    scenario gives the lower bound on the mean turnaround."""
    lines = []
    for scenario, pols in summary.items():
        seeds = next(iter(pols.values()))["seeds"]
        jobs = next(iter(pols.values()))["jobs"]
        lines.append(f"== {scenario} ({jobs:.0f} jobs, {seeds} seed(s), means over seeds)")
        width = max(len(p) for p in pols) + 2
        lines.append("policy".ljust(width) + "".join(h.rjust(CELL) for _, h, _ in COLUMNS))
        routing = [v["mean_turnaround_s"] for p, v in pols.items() if not _is_reference(p)]
        best = min(routing, default=math.nan)
        for policy, v in pols.items():
            cells = []
            for key, _, fmt in COLUMNS:
                if math.isnan(v[key]):
                    cells.append("-")
                else:
                    cells.append(f"{v[key] / 1e12:.1f}" if fmt is None else fmt.format(v[key]))
            mark = " *" if v["mean_turnaround_s"] == best and not _is_reference(policy) else ""
            lines.append(policy.ljust(width) + "".join(c.rjust(CELL) for c in cells) + mark)
        if bounds and scenario in bounds:
            lines.append("lower bound".ljust(width) + f"{bounds[scenario]:.0f}".rjust(CELL))
        lines.append("")
    lines.append("* lowest mean turnaround. Turnaround: submit -> successful finish, jobs that")
    lines.append("  succeeded; failed and unfinished jobs are counted in their own columns.")
    lines.append("  short slowd.: mean of turnaround / the job's own floor (its fastest staging +")
    lines.append(
        f"  run, no wait) over the jobs whose floor is under {SHORT_BOUND_S / 60:.0f} min;"
    )
    lines.append(f"  large mean: mean turnaround of the jobs of {LARGE_CORES} cores or more.")
    if any(_is_reference(p) for pols in summary.values() for p in pols):
        lines.append("  oracle: a reference that sees the true state (not a real policy, not a")
        lines.append("  bound); never starred. oracle_fair: the same without the pools'")
        lines.append("  negotiation phase or foresight of failures (the fair yardstick).")
    if bounds:
        lines.append("  lower bound: mean over the jobs of the fastest staging + run among")
        lines.append("  their candidates (no wait, no failure): no job can finish faster.")
    return "\n".join(lines)


def _is_reference(label: str) -> bool:
    return label.partition(":")[0] in REFERENCE_POLICIES
