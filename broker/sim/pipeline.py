"""The metric pipeline, with the real one's cadence and delays (docs/metric-contract.md).

- `htcondor_cluster_usage`: each site's producer runs every `producer_interval_s` (its own
  phase), stamped `collected_at`; it reaches InfluxDB `consumer_delay_s` later (AMQP, Telegraf).
  A site that is down sends nothing.
- `queue_by_destination`: gxadmin via Telegraf every `queue_interval_s`, stamped when collected;
  no row for a destination with nothing queued (or running).
- `destination-queue-run-time`: gxadmin once a day over the last `runtime_window_days`: count,
  median and 95th percentile of queue time (Galaxy's: dispatched -> running, so staging is in
  it) and run time, of the jobs that ended ok.
- `job_outcomes`: every `outcomes_interval_s`, ok and error counts over `outcomes_window_days`.
- `pulsar_carbon_intensity`: with each cluster report of a site whose grid intensity the
  scenario gives, by the same path (the consumer writes both).

The broker's cache refreshes every `broker_refresh_s`; a policy sees what had reached InfluxDB at
the last refresh, never later. Views are built lazily (only when a policy asks), from exactly
the `Point`s the real source would have returned (newest per series).
"""

from __future__ import annotations

import heapq
from collections import defaultdict

import numpy as np

from broker.config import Settings
from broker.metrics.view import MetricsView
from broker.ranking.derived import DerivedView, derive
from broker.sim.scenario import Pipeline
from metric_contract.lineprotocol import FieldValue, Point
from metric_contract.measurements import (
    CARBON,
    CARBON_INTENSITY,
    CLUSTER,
    OUTCOMES,
    QUEUE,
    RUNTIME,
    SITE,
)

EPOCH = 1_699_920_000.0  # a UTC midnight: simulated time 0 maps here in the points


def _ns(t: float) -> int:
    return int(round((EPOCH + t) * 1e9))


class MetricPipeline:
    def __init__(self, conf: Pipeline, settings: Settings):
        self.conf = conf
        self.settings = settings
        # (visible_at, write order, key, point): a heap, not a FIFO, since the delays differ by
        # measurement (a queue row written after a delayed cluster point is visible before it)
        self._in_flight: list[tuple[float, int, tuple, Point]] = []
        self._writes = 0
        self._influx: dict[tuple, Point] = {}  # newest point per series, as InfluxDB holds it
        self._published: dict[tuple, Point] = {}  # what the broker's last refresh read
        self._history_changed = True
        self._history_view: MetricsView | None = None
        self._refreshed_at = -1.0
        self._view: MetricsView | None = None
        self._derived: DerivedView | None = None
        # history for gxadmin and the outcome collector
        self._ok_runs: list[tuple[float, str, str, float, float]] = []  # t, dest, tool, q, run
        self._outcomes: list[tuple[float, str, str, bool]] = []
        self._outcome_times: list[float] = []
        self._out_counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self._out_lo = self._out_hi = 0
        self.views_built = 0

    # --- writers ---

    def write(self, point: Point, key: tuple, visible_at: float) -> None:
        self._writes += 1
        heapq.heappush(self._in_flight, (visible_at, self._writes, key, point))

    def cluster_usage(self, t: float, site: str, fields: dict) -> None:
        p = Point(CLUSTER, {"site": site}, fields, _ns(t))
        self.write(p, (CLUSTER, site), t + self.conf.consumer_delay_s)

    def carbon_intensity(self, t: float, site: str, g_per_kwh: float) -> None:
        # a float, as every writer of this field must: InfluxDB refuses a point whose field
        # type differs from the one the measurement's shard already holds
        p = Point(CARBON, {SITE: site}, {CARBON_INTENSITY: float(g_per_kwh)}, _ns(t))
        self.write(p, (CARBON, site), t + self.conf.consumer_delay_s)

    def queue_counts(self, t: float, counts: dict[str, tuple[int, int]]) -> None:
        for dest, (queued, running) in counts.items():
            for state, n in (("queued", queued), ("running", running)):
                if n > 0:
                    p = Point(QUEUE, {"destination_id": dest, "state": state}, {"count": n}, _ns(t))
                    self.write(p, (QUEUE, dest, state), t)

    def record_run(self, t_end: float, dest: str, tool: str, queue_s: float, run_s: float):
        self._ok_runs.append((t_end, dest, tool, queue_s, run_s))

    def record_outcome(self, t: float, dest: str, tool: str, ok: bool) -> None:
        self._outcomes.append((t, dest, tool, ok))
        self._outcome_times.append(t)

    def runtime_aggregates(self, t: float) -> None:
        since = t - self.conf.runtime_window_days * 86400
        rows: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        for t_end, dest, tool, q, r in self._ok_runs:
            if since < t_end <= t:
                rows[(dest, tool)].append((q, r))
        for (dest, tool), qr in sorted(rows.items()):
            arr = np.asarray(qr)
            fields: dict[str, FieldValue] = {
                "count": len(qr),
                "median_queue": float(np.median(arr[:, 0])),
                "median_run": float(np.median(arr[:, 1])),
                "perc_95_queue": float(np.percentile(arr[:, 0], 95)),
                "perc_95_run": float(np.percentile(arr[:, 1], 95)),
            }
            p = Point(RUNTIME, {"destination_id": dest, "tool_id": tool}, fields, _ns(t))
            self.write(p, (RUNTIME, dest, tool), t)

    def outcome_counts(self, t: float) -> None:
        """Counts over the window, kept incrementally (outcomes arrive in time order)."""
        since = t - self.conf.outcomes_window_days * 86400
        times = self._outcome_times
        while self._out_hi < len(times) and times[self._out_hi] <= t:
            _, dest, tool, ok = self._outcomes[self._out_hi]
            self._out_counts[(dest, tool)][0 if ok else 1] += 1
            self._out_hi += 1
        while self._out_lo < self._out_hi and times[self._out_lo] <= since:
            _, dest, tool, ok = self._outcomes[self._out_lo]
            self._out_counts[(dest, tool)][0 if ok else 1] -= 1
            self._out_lo += 1
        days = int(round(self.conf.outcomes_window_days))
        for (dest, tool), (n_ok, n_err) in sorted(self._out_counts.items()):
            if n_ok + n_err == 0:
                continue
            fields: dict[str, FieldValue] = {"ok": n_ok, "error": n_err, "window_days": days}
            p = Point(OUTCOMES, {"destination_id": dest, "tool_id": tool}, fields, _ns(t))
            self.write(p, (OUTCOMES, dest, tool), t)

    # --- the broker's side ---

    def refresh(self, t: float) -> None:
        """The broker's background refresh: read what has reached InfluxDB by `t`, whatever
        order it was written in (points become visible in `visible_at` order, ties in write
        order, so the newer point of a series wins)."""
        while self._in_flight and self._in_flight[0][0] <= t:
            _, _, key, point = heapq.heappop(self._in_flight)
            self._influx[key] = point
            if key[0] in (RUNTIME, OUTCOMES):
                self._history_changed = True
        self._published = dict(self._influx)
        self._refreshed_at = t
        self._view = None
        self._derived = None

    def invalidate(self) -> None:
        """Forget derived views (after the settings changed)."""
        self._view = None
        self._derived = None

    def clock(self, now: float) -> float:
        """Simulated time `now` on the clock the points are stamped with (the live source's
        wall clock)."""
        return EPOCH + now

    def view(self) -> MetricsView:
        """The view of the last refresh. A view is never changed once built: a policy takes
        ages at its own clock (`clock`)."""
        if self._view is None:
            # Built from exactly the points the source would return. The history measurements
            # change at most every few minutes: their part is parsed once per change and shared
            # (the view keeps each measurement in its own dictionary).
            if self._history_changed or self._history_view is None:
                self._history_view = MetricsView.from_points(
                    (p for k, p in self._published.items() if k[0] in (RUNTIME, OUTCOMES)),
                    source="simulated influxdb",
                )
                self._history_changed = False
            live = MetricsView.from_points(
                (p for k, p in self._published.items() if k[0] in (CLUSTER, QUEUE, CARBON)),
                source="simulated influxdb",
            )
            self._view = MetricsView(
                cluster=live.cluster,
                queues=live.queues,
                runtimes=self._history_view.runtimes,
                outcomes=self._history_view.outcomes,
                carbon=live.carbon,
                frozen_now_s=self.clock(self._refreshed_at),
                latest_queue_s=live.latest_queue_s,
                source=live.source,
            )
            self.views_built += 1
        return self._view

    def derived(self) -> DerivedView:
        """The ranking's derived view of the last refresh, derived at refresh time as the real
        cache does."""
        if self._derived is None:
            self._derived = derive(self.view(), self.settings, now=self.clock(self._refreshed_at))
        return self._derived
