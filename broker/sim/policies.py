"""Routing policies. Each sees only what a real one would: TPV's candidates for the job (in TPV's
order), the job's inputs (object store and size, as Galaxy knows them) and resources, and, for
the metric-driven ones, the metrics the broker's last refresh read (`MetricPipeline.view`).
None sees the simulator's true state, true bandwidths or failure probabilities.

- `tpv_default`: TPV's own rank (most preferred tags, then config order): the first candidate.
- `weighted_random`: TPV's `helpers.weighted_random_sampling`, what large servers use today:
  a candidate drawn with probability proportional to its weight (the site's `weight`, default
  its cores).
- `original_broker`: the original TPV Broker's published rule: viable destinations (free cores
  and free memory, from cluster usage, suffice for the job) first, by
  `1/(median_queue x queued) + 1/(median_run x running)` (higher is better; the tool's gxadmin
  medians at the destination, Galaxy's queued/running counts; a zero or missing product makes
  its term 1, i.e. the best), distance from the nearest input store as the tie-break; then the
  rest by distance.
- `least_loaded`: the candidate with the smallest `(cpus - cpus_free + waiting) / cpus`, where
  `waiting = max(HTCondor idle, Galaxy queued)`; ties in TPV's order.
- `broker`: this project's ranking code (`broker.ranking.rank`), fed the simulated metrics.

`REFERENCE_POLICIES` are not routing policies a deployment could run but yardsticks that see
the true state: `oracle` (`broker.sim.oracle`, built on `Policy`) and `oracle_fair`
(`broker.sim.oracle_fair`: the same without the negotiation phase or foresight of failures,
the reference the broker is measured against). They can be asked for by name
and are never in `POLICIES`, the set the broker is compared with. `broker.sim.runner.make_policy`
builds any of them by name (this module does not import the oracle, which imports it).

The baselines are given the same freshness rule as the broker (a site without a cluster-usage
point in `metrics.staleness_s` goes last; a queue row that old counts as an empty queue): the
generous reading of what they would do, so that the broker is not compared with a strawman.
"""

from __future__ import annotations

import bisect
import itertools
from typing import TYPE_CHECKING

from broker.metrics.freshness import is_current
from broker.ranking.context import RankContext
from broker.ranking.query import Job as RankedJob
from broker.ranking.query import RankQuery, score_levels
from broker.ranking.rank import rank
from broker.ranking.routed import RoutedLedger
from broker.ranking.transfer import Inputs, distance_km
from broker.sim.network import tpv_scores
from metric_contract.units import MB_PER_GB

if TYPE_CHECKING:
    from broker.sim.engine import Simulation
    from broker.sim.workload import Job

POLICIES = ("tpv_default", "weighted_random", "original_broker", "least_loaded", "broker")
REFERENCE_POLICIES = ("oracle", "oracle_fair")
ALL_POLICIES = POLICIES + REFERENCE_POLICIES


class Policy:
    name = ""

    def __init__(self, sim: Simulation):
        self.sim = sim
        self.calls = 0

    def choose(self, job: Job, attempt: int, now: float) -> str:
        raise NotImplementedError

    # helpers shared by the metric-driven baselines: they read the metrics with the broker's
    # own freshness rule (the generous reading, see the module docstring)
    def _fresh_usage(self, view, dest: str, now_abs: float):
        """The destination's site's cluster usage, or None when it is missing or not current."""
        site = self.sim.settings.site_of(dest)
        usage = view.cluster.get(site)
        if usage is None or not self._current(usage.time_s, now_abs):
            return None
        return usage

    def _queue(self, view, dest: str, state: str, now_abs: float) -> float:
        """Galaxy's count of the destination's jobs in `state`; a row that is not current is
        an empty queue (gxadmin writes no row for one)."""
        row = view.queues.get(dest, {}).get(state)
        if row is None or not self._current(row.time_s, now_abs):
            return 0.0
        return row.count

    def _current(self, time_s: float, now_abs: float) -> bool:
        return is_current(time_s, now_abs, self.sim.settings.metrics.staleness_s)


class TpvDefault(Policy):
    name = "tpv_default"

    def choose(self, job, attempt, now):
        return self.sim.tpv[job.tool][0]


class WeightedRandom(Policy):
    name = "weighted_random"

    def __init__(self, sim):
        super().__init__(sim)
        self._cum: dict[str, tuple[list[str], list[float]]] = {}
        for tool, cands in sim.tpv.items():
            weights = []
            for d in cands:
                conf = sim.sc.sites[sim.network.site_of_dest[d]]
                weights.append(conf.weight if conf.weight is not None else float(conf.cores))
            total = sum(weights) or 1.0
            self._cum[tool] = (cands, list(itertools.accumulate(w / total for w in weights)))

    def choose(self, job, attempt, now):
        cands, cum = self._cum[job.tool]
        i = bisect.bisect_right(cum, job.choice_u[attempt])
        return cands[min(i, len(cands) - 1)]


class OriginalBroker(Policy):
    name = "original_broker"

    def choose(self, job, attempt, now):
        sim = self.sim
        view = sim.pipeline.view()
        now_abs = sim.pipeline.clock(now)
        tool = sim.sc.tools[job.tool]
        stores = {s for s, size in job.datasets if size > 0}
        coords = {k: (o.latitude, o.longitude) for k, o in sim.settings.objectstores.items()}
        viable, rest = [], []
        for pos, dest in enumerate(sim.tpv[job.tool]):
            conf = sim.settings.destinations[dest]
            here = (conf.latitude, conf.longitude)
            dist = min((distance_km(coords[s], here) for s in stores), default=0.0)
            usage = self._fresh_usage(view, dest, now_abs)
            if (
                usage is None
                or usage.cpus_free < tool.cores
                or usage.memory_mb_free < tool.mem_gb * MB_PER_GB
                or usage.gpus_free < tool.gpus
            ):
                rest.append((dist, pos, dest))
                continue
            stats = view.runtimes.get((dest, job.tool))
            mq = (stats.median_queue or 0.0) if stats else 0.0
            mr = (stats.median_run or 0.0) if stats else 0.0
            queued = self._queue(view, dest, "queued", now_abs)
            running = self._queue(view, dest, "running", now_abs)
            score = 1.0 / max(mq * queued, 1.0) + 1.0 / max(mr * running, 1.0)
            viable.append((-score, dist, pos, dest))
        if viable:
            return min(viable)[-1]
        return min(rest)[-1]


class LeastLoaded(Policy):
    name = "least_loaded"

    def choose(self, job, attempt, now):
        view = self.sim.pipeline.view()
        now_abs = self.sim.pipeline.clock(now)
        best = None
        for pos, dest in enumerate(self.sim.tpv[job.tool]):
            usage = self._fresh_usage(view, dest, now_abs)
            if usage is None or usage.cpus <= 0:
                key = (1, 0.0, pos)
            else:
                waiting = max(usage.jobs_idle, self._queue(view, dest, "queued", now_abs))
                key = (0, (usage.cpus - usage.cpus_free + waiting) / usage.cpus, pos)
            if best is None or key < best[0]:
                best = (key, dest)
        return best[1]


class Broker(Policy):
    name = "broker"

    def __init__(self, sim: Simulation):
        super().__init__(sim)
        ranking, metrics = sim.settings.ranking, sim.settings.metrics
        self.ledger = RoutedLedger(ranking.routed_grace_s, metrics.staleness_s)
        # TPV's scores, as the rank snippet sends them
        self.levels = {
            tool: score_levels(tuple(order), tpv_scores(sim.sc, tool))
            for tool, order in sim.tpv.items()
        }

    def choose(self, job, attempt, now):
        sim = self.sim
        tool = sim.sc.tools[job.tool]
        cands = tuple(sim.tpv[job.tool])
        query = RankQuery(
            RankedJob.from_tpv(job.tool, tool.mem_gb, tool.cores, tool.gpus),
            cands,
            Inputs.of(
                {
                    f"d{i}": {"object_store_id": store, "size": size}
                    for i, (store, size) in enumerate(job.datasets)
                },
                {},
            ),
            levels=self.levels[job.tool],
        )
        ctx = RankContext(
            sim.settings, sim.pipeline.derived(), None, self.ledger, sim.pipeline.clock(now)
        )
        self.calls += 1
        return rank(ctx, query).sorted_destinations[0]


# the routing policies by name (the reference policies are added by `runner.make_policy`)
CLASSES = {c.name: c for c in (TpvDefault, WeightedRandom, OriginalBroker, LeastLoaded, Broker)}
