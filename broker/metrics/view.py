"""An immutable view of the metrics the ranking reads, built from line-protocol points.

Both sources (a snapshot file, InfluxDB) produce points; this module turns them into the latest
value per series of the five measurements in the metric contract (`metric_contract`,
docs/metric-contract.md), and counts the per-attempt outcomes. A view is replaced whole on
every refresh, so a request never sees half an update. The values it holds per series
(`ClusterUsage`, `QueueCount`, `RunStats`, `Outcomes`, `CarbonIntensity`) are in
`broker.metrics.series`; this module is the choosing and combining: which point is newest,
which queue rows still count.

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
import metric_contract.pulsar_util as pu
from broker.metrics.pulsar_util import CARBON_SHAPE, PulsarUtilReader, is_pulsar_util
from broker.metrics.series import (
    OWN_SHAPE,
    CarbonIntensity,
    ClusterUsage,
    Outcomes,
    QueueCount,
    RunStats,
    number_field,
)
from metric_contract.lineprotocol import Point
from metric_contract.sites import site_problem

log = logging.getLogger(__name__)

# Lines of one gxadmin run share Telegraf's timestamp; allow for rounding to the second.
QUEUE_RUN_SLACK_S = 1.0


class SourceError(Exception):
    """A metric source could not produce a view; the message says which and why."""


@dataclass
class MetricsView:
    """Latest point per series. `frozen_now_s` is set for a snapshot (ages are relative to its
    newest point); for a live source it is None and ages are taken against the wall clock.

    The gxadmin measurements and job outcomes of several Galaxy servers (Telegraf's `host` tag)
    are combined per destination: queue counts summed over each server's newest run, run times
    and outcomes pooled, with each server's part kept (`parts`) for the explanation."""

    cluster: dict[str, ClusterUsage] = field(default_factory=dict)
    queues: dict[str, dict[str, QueueCount]] = field(default_factory=dict)
    runtimes: dict[tuple[str, str], RunStats] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], Outcomes] = field(default_factory=dict)
    carbon: dict[str, CarbonIntensity] = field(default_factory=dict)  # by site
    frozen_now_s: float | None = None
    latest_queue_s: float = 0.0  # time of the last gxadmin queue run seen
    source: str = "empty"
    loaded_at_s: float = field(default_factory=time.time)
    latest_queue_by_host: dict[str, float] = field(default_factory=dict)  # of each server

    def queue_row(self, destination_id: str, since: float = -math.inf) -> QueueCount | None:
        """Jobs Galaxy has queued for a destination, as of the last gxadmin run, or None (the
        ranking also ignores a row older than `metrics.staleness_s`; with `since`, rows older
        than it are left out here already).

        gxadmin writes no row for a drained queue, and Telegraf stamps every line of one run
        with the same time, so a row older than its server's newest queue row of any
        destination is a queue that has drained since. With several servers, the rows that
        still count are summed."""
        row = self.queues.get(destination_id, {}).get(mc.QUEUED)
        if row is None:
            return None
        rows = [
            r
            for r in (row.parts or (row,))
            if r.time_s >= since
            and r.time_s
            >= self.latest_queue_by_host.get(r.host, self.latest_queue_s) - QUEUE_RUN_SLACK_S
        ]
        if not rows:
            return None
        if len(rows) == 1:
            return rows[0]
        return QueueCount(
            sum(r.count for r in rows), min(r.time_s for r in rows), parts=tuple(rows)
        )

    def now(self) -> float:
        return self.frozen_now_s if self.frozen_now_s is not None else time.time()

    @property
    def empty(self) -> bool:
        # carbon intensities alone rank nothing (and pulsar-util's consumer writes them on
        # while the producers are down): they neither make a view non-empty ...
        return not (self.cluster or self.queues or self.runtimes or self.outcomes)

    @property
    def newest_s(self) -> float | None:
        times = [c.time_s for c in self.cluster.values()]
        times += [q.time_s for states in self.queues.values() for q in states.values()]
        times += [r.time_s for r in self.runtimes.values()]
        times += [o.time_s for o in self.outcomes.values()]
        # ... nor move a snapshot's clock: unpriced, they must change no answer
        return max(times) if times else None

    @classmethod
    def from_points(
        cls, points: Iterable[Point], *, source: str, frozen: bool = False
    ) -> MetricsView:
        """Keep the newest point of each series; ignore measurements outside the contract.
        A `job_attempt_outcome` point is one attempt, or, with a `count` field (the InfluxDB
        source counts them in the database), that many attempts."""
        view = cls(source=source)
        legacy = PulsarUtilReader()
        queues: dict[tuple[str, str, str], QueueCount] = {}
        runtimes: dict[tuple[str, str, str], RunStats] = {}
        outcomes: dict[tuple[str, str, str], Outcomes] = {}
        skipped = 0
        attempts: dict[tuple[str, str], list[float]] = {}  # key -> [ok, error, newest time]
        for p in points:
            t = p.time_s or 0.0
            tags = p.tags
            host = tags.get(mc.HOST, "")
            if p.measurement == mc.CLUSTER and tags.get(mc.SITE):
                usage = ClusterUsage.from_point(p)
                old = view.cluster.get(usage.site)
                if old is None or old.time_s <= t:
                    view.cluster[usage.site] = usage
            elif p.measurement == mc.CLUSTER and is_pulsar_util(p):
                legacy.add(p)
            elif p.measurement == mc.QUEUE and tags.get(mc.DESTINATION_ID):
                qkey = (tags[mc.DESTINATION_ID], tags.get(mc.STATE, mc.QUEUED), host)
                old_q = queues.get(qkey)
                if old_q is None or old_q.time_s <= t:
                    queues[qkey] = QueueCount(number_field(p.fields, mc.COUNT), t, host)
            elif (
                p.measurement == mc.RUNTIME and tags.get(mc.DESTINATION_ID) and tags.get(mc.TOOL_ID)
            ):
                key = (tags[mc.DESTINATION_ID], tags[mc.TOOL_ID], host)
                if key not in runtimes or runtimes[key].time_s <= t:
                    runtimes[key] = RunStats.from_point(p, host)
            elif (
                p.measurement == mc.OUTCOMES
                and tags.get(mc.DESTINATION_ID)
                and tags.get(mc.TOOL_ID)
            ):
                key = (tags[mc.DESTINATION_ID], tags[mc.TOOL_ID], host)
                if key not in outcomes or outcomes[key].time_s <= t:
                    ok, err = number_field(p.fields, mc.OK), number_field(p.fields, mc.ERROR)
                    outcomes[key] = Outcomes(max(ok, 0.0), max(err, 0.0), t, host)
            elif p.measurement == mc.CARBON:
                view._add_carbon(p)
            elif (
                p.measurement == mc.ATTEMPT_OUTCOMES
                and tags.get(mc.DESTINATION_ID)
                and tags.get(mc.TOOL_ID)
            ):
                state = tags.get(mc.STATE, "")
                n = number_field(p.fields, mc.COUNT, 1.0)
                tally = attempts.setdefault((tags[mc.DESTINATION_ID], tags[mc.TOOL_ID]), [0, 0, 0])
                if state in mc.OK_STATES:
                    tally[0] += max(n, 0.0)
                elif state in mc.ERROR_STATES:
                    tally[1] += max(n, 0.0)
                tally[2] = max(tally[2], t)
            else:
                skipped += 1
        if skipped:
            log.debug("ignored %d points outside the metric contract", skipped)
        for site, values in legacy.usages().items():
            if site not in view.cluster:  # this suite's own shape wins
                view.cluster[site] = ClusterUsage(**values)
        view._combine(queues, runtimes, outcomes)
        # Per-attempt outcomes (every Galaxy server's attempts, summed) replace the job-final
        # counts of the same destination and tool, which see only a job's last destination.
        for pair, (ok, err, t) in attempts.items():
            if ok + err > 0:  # only deleted/stopped attempts: keep the job-final counts
                view.outcomes[pair] = Outcomes(ok, err, t)
        if frozen:
            view.frozen_now_s = view.newest_s
        return view

    def _add_carbon(self, p: Point) -> None:
        """A site's carbon intensity, in this suite's shape (`site` tag) or pulsar-util's
        (`destination_id` string field); the newest point of either wins (both carry the same
        figure), this suite's on a tie."""
        site, shape = p.tags.get(mc.SITE), OWN_SHAPE
        if not site:
            named = p.fields.get(pu.DESTINATION_ID)
            site, shape = (pu.site_of(named), CARBON_SHAPE) if isinstance(named, str) else ("", "")
        found = CarbonIntensity.from_point(p, site, shape) if site_problem(site) is None else None
        if found is None:
            return
        old = self.carbon.get(site)
        if (
            old is None
            or old.time_s < found.time_s
            or (old.time_s == found.time_s and shape == OWN_SHAPE)
        ):
            self.carbon[site] = found

    def _combine(
        self,
        queues: dict[tuple[str, str, str], QueueCount],
        runtimes: dict[tuple[str, str, str], RunStats],
        outcomes: dict[tuple[str, str, str], Outcomes],
    ) -> None:
        """One entry per destination (and state or tool) from each server's newest one."""
        latest = self.latest_queue_by_host
        for (_, _, host), q in queues.items():
            latest[host] = max(latest.get(host, 0.0), q.time_s)
        self.latest_queue_s = max(latest.values(), default=0.0)
        grouped: dict[tuple[str, str], list[QueueCount]] = {}
        for (dest, state, _), q in queues.items():
            grouped.setdefault((dest, state), []).append(q)
        for (dest, state), rows in grouped.items():
            # a server's row older than its newest run is a queue drained there since
            current = [r for r in rows if r.time_s >= latest[r.host] - QUEUE_RUN_SLACK_S]
            row = QueueCount.combined(current) if current else max(rows, key=lambda r: r.time_s)
            self.queues.setdefault(dest, {})[state] = row
        runs: dict[tuple[str, str], list[RunStats]] = {}
        for (dest, tool, _), r in runtimes.items():
            runs.setdefault((dest, tool), []).append(r)
        self.runtimes = {key: RunStats.pooled(parts) for key, parts in runs.items()}
        results: dict[tuple[str, str], list[Outcomes]] = {}
        for (dest, tool, _), o in outcomes.items():
            results.setdefault((dest, tool), []).append(o)
        self.outcomes = {key: Outcomes.pooled(parts) for key, parts in results.items()}
