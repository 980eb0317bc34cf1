"""Headroom references: the `oracle` policy and the per-job lower bound.

Neither is something a deployment could run. They answer "how much better could any routing
do on this workload?", so that a target the broker misses can be told apart from a target no
policy can meet.

- `Oracle` sees the simulator's true state, which no real policy does: each machine's free
  cores, memory and GPUs, each pool's idle queue in order, the exact end time of every running
  job, the attempts still staging towards each site and when they will arrive, the true
  bandwidths, the job's exact run time at each site, and whether an attempt will fail there.
  For each candidate that is up it replays that pool's negotiator (the same rules as
  `pool_events.PoolEvents.negotiate`: every `negotiation_interval_s`, idle jobs in queue order,
  first machine that fits, backfill) until the job would start, and picks the smallest
  staging + wait + run. Being omniscient, it also uses the true run time (and failure) of every
  job ahead of it in the queue, Galaxy's and the local users' alike, so the replay is exact up
  to what happens after the decision. A doomed attempt costs the time until it fails plus the
  best case of a resubmission (the smallest staging + run over the candidates, no wait); an
  attempt that would fail for good (the last one) goes after every other choice.

  It is a *reference, not a bound*: it is greedy (each job takes the best start for itself,
  and may delay the jobs that arrive after it), and blind to the future: arrivals (Galaxy's,
  the local users', resubmissions) and outages after the decision are not in its replay, and it
  never holds a job back. A better policy than the oracle is possible in principle.

- `OracleFair` (broker/sim/oracle_fair.py) is the same replay without the negotiation phase
  or the foresight of failures: the fair reference.

- `lower_bound_s` is a bound: for each measured job, the smallest true staging + run time over
  its TPV candidates (no queue wait, no failure, no negotiation delay), averaged over the
  measured jobs. No policy's mean turnaround can be below it (up to the difference in job sets:
  a policy's mean is over the jobs that succeeded).
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

import numpy as np

from broker.sim.policies import Policy
from broker.sim.workload import HOUR
from metric_contract.units import MB_PER_GB

if TYPE_CHECKING:
    from broker.sim.engine import Simulation
    from broker.sim.pools import SiteState, Task
    from broker.sim.workload import Job


def job_lower_bound_s(sim: Simulation, job: Job) -> float:
    """min over the job's TPV candidates of (true staging + exact run time)."""
    best = math.inf
    for dest in sim.tpv[job.tool]:
        site = sim.network.site_of_dest[dest]
        staging = sim.network.transfer(job.datasets, site)[0]
        best = min(best, staging + sim.runs.run_s(job, site))
    return best


def job_lower_bounds(sim: Simulation) -> dict[int, float]:
    """`job_lower_bound_s` of every measured job, by job id (the short-job class and its
    slowdown are defined on it, `broker.sim.report`)."""
    return {j.id: job_lower_bound_s(sim, j) for j in sim.jobs if j.measured}


def lower_bound_s(sim: Simulation, bounds: dict[int, float] | None = None) -> float:
    """Mean of `job_lower_bound_s` over the measured jobs (NaN if there are none); `bounds`:
    `job_lower_bounds(sim)` when already computed."""
    values = list((job_lower_bounds(sim) if bounds is None else bounds).values())
    return float(np.mean(values)) if values else math.nan


class Oracle(Policy):
    """Omniscient greedy reference (see the module docstring): not a bound."""

    name = "oracle"

    def choose(self, job: Job, attempt: int, now: float) -> str:
        sim = self.sim
        tool = sim.sc.tools[job.tool]
        need = (tool.cores, tool.mem_gb * MB_PER_GB, tool.gpus)
        rows = []  # (staging, run, position in TPV's order, destination, site)
        for pos, dest in enumerate(sim.tpv[job.tool]):
            site = sim.network.site_of_dest[dest]
            staging = sim.network.transfer(job.datasets, site)[0]
            rows.append((staging, sim.runs.run_s(job, site), pos, dest, site))
        up = [r for r in rows if sim.sites[r[4]].up]
        if not up:  # every candidate is down: the one that is back first
            return min(rows, key=lambda r: (self._back_at(r[4], now), r[2]))[3]
        retry = min(staging + run for staging, run, *_ in rows)  # a resubmission, best case
        last = attempt + 1 >= sim.sc.max_attempts
        # Candidates by their floor (no wait), so that most replays stop early: a replay is
        # abandoned once the job could no longer beat the best cost found so far.
        up.sort(key=lambda r: (r[0] + min(r[1], retry), r[2]))
        best: tuple[bool, float, int] | None = None  # (fails for good, cost, position)
        choice = up[0][3]
        for staging, run, pos, dest, site in up:
            floor = staging + min(run, retry)
            if best is not None and not best[0] and floor > best[1]:
                break
            budget = math.inf if best is None or best[0] else now + best[1] - min(run, retry)
            start = self._start(site, now, now + staging, need, budget)
            if start == math.inf:
                continue
            fails_for_good, cost = self._cost(job, attempt, site, run, now, start, retry, last)
            key = (fails_for_good, cost, pos)
            if best is None or key < best:
                best, choice = key, dest
        return choice

    # What the oracle knows, in the places where `OracleFair` (broker/sim/oracle_fair.py)
    # knows less: the cost of this attempt, the first negotiation cycle of a pool and the next
    # one after a change, and how long a job ahead of it runs (`_running_end` for a running
    # one, `_duration` for a queued one).

    def _cost(
        self,
        job: Job,
        attempt: int,
        site: str,
        run: float,
        now: float,
        start: float,
        retry: float,
        last: bool,
    ) -> tuple[bool, float]:
        """(this attempt fails for good, its cost from `now`: until it starts + how long it
        runs + the best case of a resubmission if it fails): the oracle knows whether it
        will fail."""
        fails, duration = self.sim.runs.outcome(job, attempt, site, run, start)
        return fails and last, start - now + duration + (retry if fails and not last else 0.0)

    def _first_tick(self, site: SiteState, now: float) -> float | None:
        """The pool's negotiation cycle already due (None: none is)."""
        return site.negotiation_due

    def _next_tick(self, site: SiteState, t: float, step: float) -> float:
        """The negotiation cycle a change at `t` is acted on: the pool's own phase."""
        return site.next_negotiation(t, step)

    def _running_end(self, task: Task) -> float:
        """When a running job ends (its failure included: known at its start)."""
        return task.ends_at

    def _back_at(self, site: str, now: float) -> float:
        """When the outage `site` is in ends (scenario time)."""
        sim = self.sim
        rel_h = (now - sim.start) / HOUR
        ends = [
            sim.start + (o.start_h + o.duration_h) * HOUR
            for o in sim.sc.outages
            if o.site == site and o.start_h <= rel_h < o.start_h + o.duration_h
        ]
        return min(ends, default=now)

    def _duration(self, task: Task, site: str, t: float) -> float:
        if task.job is None:
            return task.run_s
        return self.sim.runs.outcome(task.job, task.attempt, site, task.run_s, t)[1]

    def _start(
        self, site_name: str, now: float, ready: float, need: tuple[int, float, int], budget: float
    ) -> float:
        """When a job needing `need`, staged at `site_name` at `ready`, would start there, if
        nothing else arrives: the pool's negotiator replayed from its true state. `math.inf`
        once the start would be later than `budget`."""
        sim = self.sim
        site = sim.sites[site_name]
        step = sim.sc.negotiation_interval_s
        free = site.machines.copy()
        # (end, tie-break, machine, cores, memory, GPUs); the order among equal ends does not
        # matter: every end up to a negotiation is released before it
        ends = [
            (self._running_end(t), i, t.machine, t.cores, t.mem_mb, t.gpus)
            for i, t in enumerate(site.running)
        ]
        heapq.heapify(ends)
        seq = len(ends)
        # STAGED events by time, then routing order; this job was routed last
        arrivals: list[tuple[float, Task | None, int, float, int]] = [
            (t.routed + t.transfer_s, t, t.cores, t.mem_mb, t.gpus) for t in site.staging
        ]
        arrivals.append((ready, None, *need))
        arrivals.sort(key=lambda a: a[0])
        queue: list[tuple[Task | None, int, float, int]] = [
            (t, t.cores, t.mem_mb, t.gpus) for t in site.idle
        ]
        nxt = 0
        tick = self._first_tick(site, now)
        while True:
            if tick is None:
                t_next = min(
                    ends[0][0] if ends else math.inf,
                    arrivals[nxt][0] if nxt < len(arrivals) else math.inf,
                )
                if t_next == math.inf:
                    return math.inf  # cannot happen: the job fits an empty machine (TPV)
                # the negotiation a change at t_next asks for (`want_negotiation`)
                tick = self._next_tick(site, t_next, step)
            if tick > budget:
                return math.inf
            while ends and ends[0][0] <= tick:
                _, _, i, c, m, g = heapq.heappop(ends)
                free.release(i, c, m, g)
            while nxt < len(arrivals) and arrivals[nxt][0] <= tick:
                queue.append(arrivals[nxt][1:])
                nxt += 1
            waiting = []
            most_free = free.most_cores()
            for entry in queue:
                task, c, m, g = entry
                i = free.first_fit(c, m, g) if c <= most_free else -1
                if i < 0:
                    waiting.append(entry)
                    continue
                if task is None:
                    return tick
                free.claim(i, c, m, g)
                most_free = free.most_cores()
                seq += 1
                heapq.heappush(
                    ends, (tick + self._duration(task, site_name, tick), seq, i, c, m, g)
                )
            queue = waiting
            tick = None
