"""Discrete-event simulation of Galaxy routing jobs over a Pulsar network of HTCondor pools.

A job arrives at Galaxy; TPV's candidates are the destinations one of whose machines can hold it;
the policy picks one; Pulsar stages the inputs that are not in the site's local object stores
(true bandwidth of the pair); the job then waits in the site's HTCondor queue with the local
users' jobs, and the negotiator (every `negotiation_interval_s`) starts the idle jobs that fit
on a machine (partitionable slots: cores, memory and GPUs of one machine), in queue order,
skipping jobs that do not fit (backfill). An attempt fails with the (site, tool) failure
probability, part-way through its run; Galaxy resubmits it, through the policy again, until
`max_attempts`. A site in an outage starts nothing and reports nothing; the jobs running there
are lost, and Galaxy notices `outage_detect_s` later and resubmits them.

This module is the simulation's state and its event loop; what happens at an event is in
`broker.sim.galaxy_events` (Galaxy, Pulsar) and `broker.sim.pool_events` (HTCondor), the pools'
state in `broker.sim.pools`, the truth about runs in `broker.sim.runs`. The simulation is handed a
policy factory rather than importing the policies: they (and the oracle) read the simulation,
so the dependency runs one way only (`broker.sim.runner` wires the two).

Every measured job ends either ok or failed (attempts exhausted) or is reported unfinished at
the hard stop; `Result` carries all of them.
"""

from __future__ import annotations

import copy
import heapq
import math
from collections.abc import Callable

from broker.config import Settings
from broker.ranking.carbon import KG_PER_S_W_G
from broker.sim.events import (
    ARRIVE,
    BG_ARRIVE,
    END,
    GX_QUEUE,
    GX_RUNTIME,
    LOST,
    NEGOTIATE,
    OUTAGE_END,
    OUTAGE_START,
    OUTCOMES,
    PRODUCER,
    REFRESH,
    SAMPLE,
    STAGED,
)
from broker.sim.galaxy_events import GalaxyEvents, Router
from broker.sim.network import Network, tpv_order
from broker.sim.pipeline import MetricPipeline
from broker.sim.pool_events import PoolEvents
from broker.sim.pools import SiteState
from broker.sim.results import JobRecord, Result
from broker.sim.runs import RunModel
from broker.sim.scenario import Scenario
from broker.sim.workload import HOUR, generate, rng_for

HISTORY_POLICY = "weighted_random"  # today's policy: it routes the history before the window


# name -> policy routing on that simulation (`broker.sim.runner.make_policy`)
PolicyFactory = Callable[[str, "Simulation"], Router]


class Simulation(GalaxyEvents, PoolEvents):
    """One run: the jobs of one seed over the scenario's network, routed by `policy_name`
    (built by `make_policy`) from the measured window's start and by `HISTORY_POLICY` before."""

    def __init__(
        self,
        scenario: Scenario,
        policy_name: str,
        seed: int,
        settings: Settings,
        make_policy: PolicyFactory,
    ):
        self.sc = scenario
        self.seed = seed
        self.settings = settings
        self.network = Network.build(scenario, rng_for(seed, "network"))
        self.start = math.ceil(scenario.history_h / 24) * 86400.0
        self.window_end = self.start + scenario.duration_h * HOUR
        self.hard_stop = self.window_end + scenario.drain_h * HOUR
        self.runs = RunModel(scenario, self.start)
        self.jobs = generate(scenario, seed, self.start)
        self.sites = {
            name: SiteState(name, conf, i, scenario.negotiation_interval_s)
            for i, (name, conf) in enumerate(scenario.sites.items())
        }
        self.pipeline = MetricPipeline(scenario.pipeline, settings)
        self.tpv = {tool: tpv_order(scenario, tool) for tool in scenario.tools}
        self.make_policy = make_policy
        self.history_policy = make_policy(HISTORY_POLICY, self)
        self.policy = make_policy(policy_name, self)
        self.policy_name = policy_name
        self.records = {j.id: JobRecord(j) for j in self.jobs}
        self.galaxy_queued: dict[str, int] = {d: 0 for d in self.network.site_of_dest}
        self.galaxy_running: dict[str, int] = {d: 0 for d in self.network.site_of_dest}
        self._heap: list = []
        self._seq = 0
        self.now = 0.0
        self.unresolved = sum(j.measured for j in self.jobs)
        self.busy_integral = 0.0
        self._busy_t = self.start
        self.timeline: dict[str, list[tuple[float, int, int]]] = {s: [] for s in self.sites}
        self.max_overcommit = 0
        self._bg_rng = {s: rng_for(seed, f"background:{s}") for s in self.sites}

    # --- event queue ---

    def at(self, t: float, kind: int, payload=None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, kind, self._seq, payload))

    # --- the loop ---

    def schedule_all(self) -> None:
        p = self.sc.pipeline
        t0 = self.start - self.sc.history_h * HOUR
        for job in self.jobs:
            self.at(job.submit, ARRIVE, job)
        for site in self.sites.values():
            self.at(t0 + site.phase, BG_ARRIVE, site)
            self.at(t0 + site.phase, PRODUCER, site)
        for o in self.sc.outages:
            s = self.sites[o.site]
            self.at(self.start + o.start_h * HOUR, OUTAGE_START, s)
            self.at(self.start + (o.start_h + o.duration_h) * HOUR, OUTAGE_END, s)
        self.at(t0, GX_QUEUE)
        self.at(math.ceil(t0 / p.runtime_interval_s) * p.runtime_interval_s, GX_RUNTIME)
        self.at(t0, OUTCOMES)
        self.at(t0, REFRESH)
        self.at(self.start, SAMPLE)

    def advance(self, until: float) -> None:
        """Process every event before `until` (or until the measured jobs are all resolved)."""
        p = self.sc.pipeline
        heap = self._heap
        while heap and heap[0][0] < until:
            t, kind, _, payload = heapq.heappop(heap)
            if self.unresolved == 0 and t >= self.window_end:
                heap.clear()
                break
            self.now = t
            if kind == END:
                self.end(payload)
            elif kind == NEGOTIATE:
                self.negotiate(payload)
            elif kind == STAGED:
                self.staged(payload)
            elif kind == ARRIVE:
                self.route(payload, 0)
            elif kind == BG_ARRIVE:
                self.background(payload)
            elif kind == PRODUCER:
                if payload.up:
                    self.pipeline.cluster_usage(t, payload.name, payload.usage_fields())
                    g_per_kwh = self.sc.sites[payload.name].carbon_g_per_kwh
                    if g_per_kwh is not None:
                        self.pipeline.carbon_intensity(t, payload.name, g_per_kwh)
                self.at(t + p.producer_interval_s, PRODUCER, payload)
            elif kind == GX_QUEUE:
                counts = {
                    d: (self.galaxy_queued[d], self.galaxy_running[d]) for d in self.galaxy_queued
                }
                self.pipeline.queue_counts(t, counts)
                self.at(t + p.queue_interval_s, GX_QUEUE)
            elif kind == GX_RUNTIME:
                self.pipeline.runtime_aggregates(t)
                self.at(t + p.runtime_interval_s, GX_RUNTIME)
            elif kind == OUTCOMES:
                self.pipeline.outcome_counts(t)
                self.at(t + p.outcomes_interval_s, OUTCOMES)
            elif kind == REFRESH:
                self.pipeline.refresh(t)
                self.at(t + p.broker_refresh_s, REFRESH)
            elif kind == LOST:
                self.attempt_over(payload, False)
            elif kind in (OUTAGE_START, OUTAGE_END):
                self.outage(payload, kind == OUTAGE_START)
            elif kind == SAMPLE:
                for name, s in self.sites.items():
                    running = sum(1 for x in s.running if x.job is not None)
                    idle = sum(1 for x in s.idle if x.job is not None)
                    self.timeline[name].append(((t - self.start) / HOUR, idle, running))
                self.at(t + 300.0, SAMPLE)

    def finish(self) -> Result:
        self.advance(self.hard_stop)
        self.now = min(max(self.now, self.window_end), self.hard_stop)
        self._account_busy()
        for rec in self.records.values():
            if rec.outcome == "pending":
                rec.outcome = "unfinished"
        total_cores = sum(s.total[0] for s in self.sites.values())
        window = self.window_end - self.start
        return Result(
            scenario=self.sc.name,
            policy=self.policy_name,
            seed=self.seed,
            records=[r for r in self.records.values() if r.job.measured],
            start=self.start,
            end_of_window=self.window_end,
            utilisation=self.busy_integral / (total_cores * window),
            timeline=self.timeline,
            rank_calls=getattr(self.policy, "calls", 0),
            views_built=self.pipeline.views_built,
            max_overcommit=self.max_overcommit,
            kg_per_s={
                name: (s.watts_per_core * g * KG_PER_S_W_G, s.watts_per_gpu * g * KG_PER_S_W_G)
                for name, s in self.sc.sites.items()
                if (g := s.carbon_g_per_kwh) is not None
            },
        )

    def fork(
        self, policy_name: str, settings: Settings | None = None, label: str = ""
    ) -> Simulation:
        """A copy of this simulation (at the end of the history) that routes with another
        policy (and broker settings) from now on: the history is the same for every policy,
        so it is run once."""
        twin = copy.deepcopy(self)
        if settings is not None:
            twin.settings = settings
            twin.pipeline.settings = settings
            twin.pipeline.invalidate()
        twin.policy = twin.make_policy(policy_name, twin)
        twin.policy_name = label or policy_name
        return twin
