"""Figures a person can read: per scenario, the CDF of turnaround per policy, the data each
policy moved, and a timeline of Galaxy jobs waiting at each site per policy (first seed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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

    fig, ax = plt.subplots(figsize=(8, 5))
    for policy, runs in by_policy.items():
        t = np.sort([x for r in runs for x in r.turnarounds])
        if t.size:
            ax.plot(t / 60, np.arange(1, t.size + 1) / t.size, label=policy)
    ax.set_xscale("log")
    ax.set_xlabel("turnaround: submit to successful finish (minutes, log scale)")
    ax.set_ylabel("fraction of jobs finished")
    ax.set_title(f"{scenario}: turnaround CDF ({len(runs)} seed(s) pooled)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    written.append(_save(fig, out_dir / f"{_slug(scenario)}-turnaround-cdf.png"))

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


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
