"""Figures a person can read, per scenario: the turnaround per job class (bars with their
values), the per-job paired difference against weighted random, the data each policy moved, and
a timeline of Galaxy jobs waiting at each site per policy (first seed).

A turnaround CDF on a log axis draws curves whose means differ by 13% on top of each other; the
figures here show the differences instead. Every policy runs the same jobs (common random
numbers, `broker.sim.workload`), so a job's turnaround under one policy can be paired with the
same job's under the reference: "how many jobs finished how much sooner or later" is drawn
directly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from broker.sim.report import LARGE_CORES, SHORT_BOUND_S, is_large, is_short  # noqa: E402

REFERENCE = "weighted_random"  # today's policy: what the paired differences are taken against
SAME_S = 60.0  # a job within a minute of the reference's turnaround counts as "the same"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def plot_scenario(results: list, summary: dict, out_dir: Path) -> list[Path]:
    """Write the figures of one scenario from its `runner.RunSummary`s; `summary` is
    `report.aggregate(...)[scenario]`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scenario = results[0].scenario
    by_policy: dict[str, list] = defaultdict(list)
    for r in results:
        by_policy[r.policy].append(r)
    written = []

    written.append(_classes(by_policy, scenario, out_dir))
    paired = _paired(by_policy, scenario, out_dir)
    if paired is not None:
        written.append(paired)

    policies = list(summary)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    ax1.bar(policies, [summary[p]["bytes_km"] / 1e12 for p in policies], color="tab:blue")
    ax1.set_ylabel("data moved x distance (TB x km, mean per seed)")
    ax1.set_title("data moved")
    ax2.bar(policies, [summary[p]["mean_transfer_s"] for p in policies], color="tab:orange")
    ax2.set_ylabel("mean staging time per job (s)")
    ax2.set_title("time spent staging inputs")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=30)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    fig.suptitle(scenario)
    written.append(_save(fig, out_dir / f"{_slug(scenario)}-data-moved.png"))

    first = {p: runs[0] for p, runs in by_policy.items()}
    fig, axes = plt.subplots(len(first), 1, figsize=(9, 2.2 * len(first)), sharex=True, sharey=True)
    axes = np.atleast_1d(axes)
    # Called with an int, a colormap gives its i-th colour: the base Colormap type has no
    # `.colors` (only ListedColormap does), and tab20's i-th colour is colors[i] with alpha 1.
    cmap = plt.get_cmap("tab20")
    last = 1.0
    for ax, (policy, run) in zip(axes, first.items(), strict=True):
        for i, (site, samples) in enumerate(run.timeline.items()):
            if samples:
                arr = np.asarray(samples)
                ax.plot(arr[:, 0], arr[:, 1], label=site, lw=1, color=cmap(i % 20))
                busy = arr[arr[:, 1] > 0, 0]
                last = max(last, float(busy.max()) if busy.size else 0.0)
        ax.set_title(f"{policy} (seed {run.seed})", fontsize=9, loc="left")
        ax.set_ylabel("idle jobs")
        ax.set_yscale("symlog", linthresh=10)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlim(0, last + 1)
    axes[-1].set_xlabel("hours since the measured window opened")
    axes[0].legend(ncol=6, fontsize=7, loc="upper right")
    fig.suptitle(f"{scenario}: Galaxy jobs waiting in each site's HTCondor queue")
    written.append(_save(fig, out_dir / f"{_slug(scenario)}-queue-timeline.png"))
    return written


CLASSES = (
    ("all jobs", lambda bound, cores: True),
    (f"short jobs (lower bound < {SHORT_BOUND_S / 60:.0f} min)", lambda b, c: is_short(b)),
    (f"large jobs (>= {LARGE_CORES} cores)", lambda b, c: is_large(c)),
)


def _classes(by_policy: dict[str, list], scenario: str, out_dir: Path) -> Path:
    """Per class (rows) the mean and p95 turnaround (columns) of each policy, as labelled bars;
    the jobs that succeeded, pooled over seeds."""
    policies = list(by_policy)
    fig, axes = plt.subplots(len(CLASSES), 2, figsize=(11, 3.2 * len(CLASSES)), squeeze=False)
    for row, (label, member) in enumerate(CLASSES):
        pooled = {
            p: np.array(
                [
                    t
                    for r in runs
                    for job, t in r.turnaround_by_job.items()
                    if member(*r.job_facts[job])
                ]
            )
            for p, runs in by_policy.items()
        }
        n = max((v.size for v in pooled.values()), default=0)
        stats: tuple[tuple[str, Callable[[np.ndarray], float]], ...] = (
            ("mean", _mean),
            ("p95", _p95),
        )
        for col, (what, stat) in enumerate(stats):
            ax = axes[row][col]
            values = [float(stat(pooled[p])) / 60 if pooled[p].size else 0.0 for p in policies]
            bars = ax.bar(policies, values, color=[f"C{i}" for i in range(len(policies))])
            ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
            ax.set_ylabel(f"{what} turnaround (min)")
            ax.set_title(f"{label}: {what} ({n} jobs)", fontsize=9, loc="left")
            ax.margins(y=0.15)
            ax.tick_params(axis="x", rotation=30, labelsize=8)
            for tick in ax.get_xticklabels():
                tick.set_horizontalalignment("right")
    seeds = len(next(iter(by_policy.values())))
    fig.suptitle(
        f"{scenario}: turnaround by job class ({seeds} seed(s) pooled, jobs that succeeded)"
    )
    return _save(fig, out_dir / f"{_slug(scenario)}-classes.png")


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values))


def _p95(values: np.ndarray) -> float:
    return float(np.percentile(values, 95))


def paired_differences(by_policy: dict[str, list], policy: str) -> np.ndarray:
    """Seconds by which each job finished later (+) or sooner (-) under `policy` than under
    `REFERENCE`, over the (seed, job) pairs that succeeded under both; sorted."""
    ref = {r.seed: r.turnaround_by_job for r in by_policy[REFERENCE]}
    diffs = [
        t - ref[r.seed][job]
        for r in by_policy[policy]
        if r.seed in ref
        for job, t in r.turnaround_by_job.items()
        if job in ref[r.seed]
    ]
    return np.sort(np.asarray(diffs, dtype=float))


def _paired(by_policy: dict[str, list], scenario: str, out_dir: Path) -> Path | None:
    """The sorted per-job difference against `REFERENCE`, one curve per policy: the share of
    jobs (x) that finished at least that much sooner (below 0) or later (above 0); None when
    the reference did not run."""
    if REFERENCE not in by_policy or len(by_policy) < 2:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, policy in enumerate(by_policy):
        if policy == REFERENCE:
            continue
        d = paired_differences(by_policy, policy)
        if not d.size:
            continue
        sooner, later = int((d < -SAME_S).sum()), int((d > SAME_S).sum())
        label = (
            f"{policy}: {sooner} sooner, {later} later, {d.size - sooner - later} within 1 min; "
            f"mean {d.mean() / 60:+.1f} min"
        )
        ax.plot((np.arange(d.size) + 0.5) / d.size, d / 60, color=f"C{i}", lw=1.5, label=label)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("share of jobs (sorted by the difference)")
    ax.set_ylabel(f"turnaround minus {REFERENCE}'s, same job (min, symlog)")
    ax.set_title(f"{scenario}: per-job difference against {REFERENCE} (below 0: sooner)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, out_dir / f"{_slug(scenario)}-paired-difference.png")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
