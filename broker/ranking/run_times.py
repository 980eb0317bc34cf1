"""Run times from gxadmin's history, pooled once per metrics refresh.

A tool's reference run time (count-weighted geometric mean over destinations), each
destination's relative speed (how much slower than the reference its tools run, shrunk towards
1), and a tool's expected run time at a destination: its own runs there, shrunk towards the
tool elsewhere scaled by the destination's speed, then the global default (hierarchical).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from broker.config import RankingSettings
from broker.metrics.series import RunStats

# Bounds the run-time spread read from p95 / median (a p95 of 12x the median).
MAX_RUN_SIGMA = 1.5


@dataclass(frozen=True)
class Estimate:
    value: float
    note: str


@dataclass
class RunTimes:
    settings: RankingSettings
    runtimes: dict[tuple[str, str], RunStats]
    tool_reference_run: dict[str, tuple[float, float]] = field(default_factory=dict)
    speed: dict[str, float] = field(default_factory=dict)
    typical_run: dict[str, float] = field(default_factory=dict)
    # Tool -> mean / median of its run times (lognormal spread from gxadmin's median and p95)
    run_mean_factor: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._pool_run_times()

    def _run_spread(self) -> None:
        """Expected time needs the mean run time, gxadmin reports the median (and the 95th
        percentile). Run times are right-skewed (lognormal-like: the median underestimates the
        mean by 10-40%), which would underweight run-time differences between destinations
        against transfer and wait. The spread of a tool's runs is the spread of its jobs' sizes,
        the same wherever they run: log(p95 / median) / 1.645, pooled over destinations
        (count-weighted), gives mean = median * exp(sigma^2 / 2)."""
        num: dict[str, float] = defaultdict(float)
        den: dict[str, float] = defaultdict(float)
        for (_, tool), r in self.runtimes.items():
            if r.perc_95_run and r.median_run and r.perc_95_run >= r.median_run and r.count > 1:
                sigma = min(math.log(r.perc_95_run / r.median_run) / 1.645, MAX_RUN_SIGMA)
                num[tool] += r.count * sigma
                den[tool] += r.count
        self.run_mean_factor = {t: math.exp((num[t] / den[t]) ** 2 / 2) for t in den}

    def _mean_run(self, tool: str, r: RunStats) -> float:
        return (r.median_run or 0.0) * self.run_mean_factor.get(tool, 1.0)

    def _pool_run_times(self) -> None:
        self._run_spread()
        by_tool: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
        for (dest, tool), r in self.runtimes.items():
            by_tool[tool].append((dest, max(self._mean_run(tool, r), 1.0), r.count))
        # A tool's reference run time: count-weighted geometric mean over destinations.
        for tool, rows in by_tool.items():
            n = sum(c for _, _, c in rows)
            self.tool_reference_run[tool] = (
                math.exp(sum(c * math.log(t) for _, t, c in rows) / n),
                n,
            )
        # A destination's speed: how much slower than the reference its tools run (log-mean),
        # over tools that also ran elsewhere, shrunk towards 1 by `min_runs` pseudo-runs.
        log_ratio: dict[str, float] = defaultdict(float)
        weight: dict[str, float] = defaultdict(float)
        run_sum: dict[str, float] = defaultdict(float)
        for tool, rows in by_tool.items():
            ref = self.tool_reference_run[tool][0]
            for dest, t, c in rows:
                run_sum[dest] += c * t
                if len(rows) > 1:
                    log_ratio[dest] += c * math.log(t / ref)
                    weight[dest] += c
        counts: dict[str, float] = defaultdict(float)
        for (dest, _), r in self.runtimes.items():
            counts[dest] += r.count
        k = self.settings.min_runs
        for dest in counts:
            self.speed[dest] = math.exp(log_ratio[dest] / (weight[dest] + k))
            self.typical_run[dest] = run_sum[dest] / counts[dest]

    def estimate(self, tool: str | None, dest: str) -> Estimate:
        """Hierarchical: the tool here, shrunk towards the tool elsewhere scaled by this
        destination's speed; then the global default scaled by the speed."""
        speed = self.speed.get(dest, 1.0)
        local = self.runtimes.get((dest, tool)) if tool else None
        ref = self.tool_reference_run.get(tool) if tool else None
        k = self.settings.min_runs
        if tool is not None and ref is not None:
            elsewhere = ref[0] * speed
            if local is not None:
                n = local.count
                here = self._mean_run(tool, local)
                value = (n * here + k * elsewhere) / (n + k)
                return Estimate(
                    value,
                    f"mean {here:.0f} s (median {local.median_run:.0f} s) over {n:.0f} runs "
                    f"here, shrunk towards {elsewhere:.0f} s from all destinations",
                )
            return Estimate(
                elsewhere,
                f"no runs here: {ref[0]:.0f} s elsewhere x speed {speed:.2f} of this destination",
            )
        default = self.settings.default_run_s * speed
        return Estimate(default, f"no history for this tool: default {default:.0f} s")

    def queue_time(self, tool: str | None, dest: str) -> float | None:
        r = self.runtimes.get((dest, tool)) if tool else None
        if r is None or r.median_queue is None or r.count < self.settings.min_runs:
            return None
        return r.median_queue
