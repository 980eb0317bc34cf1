"""An immutable view of the metrics the ranking reads, built from line-protocol points.

Both sources (a snapshot file, InfluxDB) produce points; this module turns them into the latest
value per series of the four measurements in the metric contract (`metric_contract`,
docs/metric-contract.md), and counts the per-attempt outcomes. A view is replaced whole on
every refresh, so a request never sees half an update.

Per-attempt outcomes (`job_attempt_outcome`), where a (destination, tool) has any that count,
replace its `job_outcomes` counts: they count every attempt at the destination it actually ran
at, while `job_outcomes` sees only a job's last destination, so a site that fails a tool's first
attempts (resubmitted elsewhere) is learnt only from them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import metric_contract.measurements as mc
from metric_contract.lineprotocol import Point

log = logging.getLogger(__name__)

# Lines of one gxadmin run share Telegraf's timestamp; allow for rounding to the second.
QUEUE_RUN_SLACK_S = 1.0


class SourceError(Exception):
    """A metric source could not produce a view; the message says which and why."""


def _num(fields: dict, key: str, default: float = 0.0) -> float:
    """A numeric field; `default` when it is missing, not a number, or NaN/infinite (line
    protocol admits them; the ranking's comparisons would order them arbitrarily)."""
    value = fields.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


@dataclass(frozen=True)
class ClusterUsage:
    """One HTCondor pool's state (memory in MB, as HTCondor reports it)."""

    site: str
    time_s: float
    cpus: float
    cpus_free: float
    memory_mb: float
    memory_mb_free: float
    gpus: float
    gpus_free: float
    jobs_idle: float
    jobs_running: float
    jobs_held: float
    largest_free_cpus: float
    largest_free_memory_mb: float
    largest_free_gpus: float

    @classmethod
    def from_point(cls, point: Point) -> ClusterUsage:
        # The attribute names are the contract's field names (a unit test holds them equal).
        f = point.fields
        values = {key: _num(f, key) for key in mc.CLUSTER_TOTALS}
        for key in mc.LARGEST_FREE_SLOT:
            # Older producers may lack the largest-slot fields: the totals are an upper bound.
            name = mc.largest_free_field(key)
            values[name] = _num(f, name, values[f"{key}_free"])
        return cls(site=point.tags.get(mc.SITE, ""), time_s=point.time_s or 0.0, **values)

    @property
    def free_fraction(self) -> float | None:
        return None if self.cpus <= 0 else max(0.0, min(1.0, self.cpus_free / self.cpus))


@dataclass(frozen=True)
class QueueCount:
    count: float
    time_s: float


@dataclass(frozen=True)
class RunStats:
    """A tool's queue and run time at a destination, in seconds (gxadmin --seconds)."""

    count: float
    median_queue: float | None
    median_run: float | None
    perc_95_queue: float | None
    perc_95_run: float | None
    time_s: float


@dataclass(frozen=True)
class Outcomes:
    ok: float
    error: float
    time_s: float


def _opt(fields: dict, key: str) -> float | None:
    value = fields.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


@dataclass
class MetricsView:
    """Latest point per series. `frozen_now_s` is set for a snapshot (ages are relative to its
    newest point); for a live source it is None and ages are taken against the wall clock."""

    cluster: dict[str, ClusterUsage] = field(default_factory=dict)
    queues: dict[str, dict[str, QueueCount]] = field(default_factory=dict)
    runtimes: dict[tuple[str, str], RunStats] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], Outcomes] = field(default_factory=dict)
    frozen_now_s: float | None = None
    latest_queue_s: float = 0.0  # time of the last gxadmin queue run seen
    source: str = "empty"
    loaded_at_s: float = field(default_factory=time.time)

    def queue_row(self, destination_id: str) -> QueueCount | None:
        """Jobs Galaxy has queued for a destination, as of the last gxadmin run, or None (the
        ranking also ignores a row older than `metrics.staleness_s`).

        gxadmin writes no row for a drained queue, and Telegraf stamps every line of one run
        with the same time, so a row older than the newest queue row of any destination is a
        queue that has drained since: None."""
        row = self.queues.get(destination_id, {}).get(mc.QUEUED)
        if row is None or row.time_s < self.latest_queue_s - QUEUE_RUN_SLACK_S:
            return None
        return row

    def now(self) -> float:
        return self.frozen_now_s if self.frozen_now_s is not None else time.time()

    @property
    def empty(self) -> bool:
        return not (self.cluster or self.queues or self.runtimes or self.outcomes)

    @property
    def newest_s(self) -> float | None:
        times = [c.time_s for c in self.cluster.values()]
        times += [q.time_s for states in self.queues.values() for q in states.values()]
        times += [r.time_s for r in self.runtimes.values()]
        times += [o.time_s for o in self.outcomes.values()]
        return max(times) if times else None

    @classmethod
    def from_points(
        cls, points: Iterable[Point], *, source: str, frozen: bool = False
    ) -> MetricsView:
        """Keep the newest point of each series; ignore measurements outside the contract.
        A `job_attempt_outcome` point is one attempt, or, with a `count` field (the InfluxDB
        source counts them in the database), that many attempts."""
        view = cls(source=source)
        skipped = 0
        attempts: dict[tuple[str, str], list[float]] = {}  # key -> [ok, error, newest time]
        for p in points:
            t = p.time_s or 0.0
            tags = p.tags
            if p.measurement == mc.CLUSTER and tags.get(mc.SITE):
                usage = ClusterUsage.from_point(p)
                old = view.cluster.get(usage.site)
                if old is None or old.time_s <= t:
                    view.cluster[usage.site] = usage
            elif p.measurement == mc.QUEUE and tags.get(mc.DESTINATION_ID):
                states = view.queues.setdefault(tags[mc.DESTINATION_ID], {})
                state = tags.get(mc.STATE, mc.QUEUED)
                old_q = states.get(state)
                if old_q is None or old_q.time_s <= t:
                    states[state] = QueueCount(_num(p.fields, mc.COUNT), t)
            elif (
                p.measurement == mc.RUNTIME and tags.get(mc.DESTINATION_ID) and tags.get(mc.TOOL_ID)
            ):
                key = (tags[mc.DESTINATION_ID], tags[mc.TOOL_ID])
                if key not in view.runtimes or view.runtimes[key].time_s <= t:
                    f = p.fields
                    view.runtimes[key] = RunStats(
                        count=_num(f, mc.COUNT),
                        median_queue=_opt(f, mc.MEDIAN_QUEUE),
                        median_run=_opt(f, mc.MEDIAN_RUN),
                        perc_95_queue=_opt(f, mc.PERC_95_QUEUE),
                        perc_95_run=_opt(f, mc.PERC_95_RUN),
                        time_s=t,
                    )
            elif (
                p.measurement == mc.OUTCOMES
                and tags.get(mc.DESTINATION_ID)
                and tags.get(mc.TOOL_ID)
            ):
                key = (tags[mc.DESTINATION_ID], tags[mc.TOOL_ID])
                if key not in view.outcomes or view.outcomes[key].time_s <= t:
                    ok, err = _num(p.fields, mc.OK), _num(p.fields, mc.ERROR)
                    view.outcomes[key] = Outcomes(max(ok, 0.0), max(err, 0.0), t)
            elif (
                p.measurement == mc.ATTEMPT_OUTCOMES
                and tags.get(mc.DESTINATION_ID)
                and tags.get(mc.TOOL_ID)
            ):
                state = tags.get(mc.STATE, "")
                n = _num(p.fields, mc.COUNT, 1.0)
                tally = attempts.setdefault((tags[mc.DESTINATION_ID], tags[mc.TOOL_ID]), [0, 0, 0])
                if state in mc.OK_STATES:
                    tally[0] += max(n, 0.0)
                elif state in mc.ERROR_STATES:
                    tally[1] += max(n, 0.0)
                tally[2] = max(tally[2], t)
            else:
                skipped += 1
        for key, (ok, err, t) in attempts.items():
            if ok + err > 0:  # only deleted/stopped attempts: keep the job-final counts
                view.outcomes[key] = Outcomes(ok, err, t)
        if skipped:
            log.debug("ignored %d points outside the metric contract", skipped)
        view.latest_queue_s = max(
            (q.time_s for states in view.queues.values() for q in states.values()), default=0.0
        )
        if frozen:
            view.frozen_now_s = view.newest_s
        return view
