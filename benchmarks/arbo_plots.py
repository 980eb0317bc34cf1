"""Figures of the ARBO benchmark (``benchmarks.arbo --plot DIR``): one per task.

Each figure is the task's time-cost trade-off at its reference input size and mean load: the
expected duration and cost of every ``s`` (grey), the Pareto frontier of the two (the ``s``
values no other ``s`` beats on both; for Amdahl-type tasks with a per-worker overhead, from
``s=1`` up to the fastest ``s``), the SLO limit when the task has one, the oracle's choice, and
the ``s`` ARBO chose over its runs (marker size = how often). Choices are placed on the
reference curve, so the figure shows where on the frontier ARBO settles, not run-to-run noise.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.arbo_tasks import CAND, Task, oracle  # noqa: E402


def pareto_mask(time: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """True where no other point is at least as good on both and better on one."""
    keep = np.ones(len(time), dtype=bool)
    for i in range(len(time)):
        dominated = (time <= time[i]) & (cost <= cost[i]) & ((time < time[i]) | (cost < cost[i]))
        keep[i] = not dominated.any()
    return keep


def plot_task(task: Task, choices: list[int], out_dir: Path) -> Path:
    truth, goal = task.truth, task.goal
    load = float(np.mean(task.loads))
    time = truth.mean(CAND, truth.x0, load)
    cost = CAND * goal.price * time
    front = pareto_mask(time, cost)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot(cost, time, ".", color="0.75", label="every s")
    ax.plot(cost[front], time[front], "-", color="tab:blue", label="Pareto frontier")
    counts = Counter(choices)
    s_chosen = np.array(sorted(counts))
    ax.scatter(
        s_chosen * goal.price * truth.mean(s_chosen, truth.x0, load),
        truth.mean(s_chosen, truth.x0, load),
        s=[20 + 15 * counts[s] for s in s_chosen],
        color="tab:orange",
        alpha=0.7,
        label="ARBO's choices (size = runs)",
        zorder=3,
    )
    best = oracle(goal, truth, truth.x0, load)
    t_best = float(truth.mean(best, truth.x0, load))
    ax.plot([best * goal.price * t_best], [t_best], "k*", markersize=12, label=f"oracle s={best}")
    if goal.max_seconds is not None:
        ax.axhline(goal.max_seconds, color="tab:red", ls="--", label="time limit")
    if goal.max_cost is not None:
        ax.axvline(goal.max_cost, color="tab:red", ls="--", label="cost limit")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("expected cost (worker-seconds x price)")
    ax.set_ylabel("expected duration (s)")
    ax.set_title(f"{task.name} (p={truth.p:g}, reference size, mean load)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{task.name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
