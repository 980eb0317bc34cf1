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

Every measured job ends either ok or failed (attempts exhausted) or is reported unfinished at
the hard stop; `Result` carries all of them.
"""

from __future__ import annotations

import copy
import heapq
import math
from dataclasses import dataclass, field

from broker.config import Settings
from broker.sim.network import Network, tpv_order
from broker.sim.pipeline import MetricPipeline
from broker.sim.scenario import Scenario, Site
from broker.sim.workload import HOUR, Job, generate, rng_for

MB_PER_GB = 1024
BG_MEM_MB_PER_CORE = 4 * MB_PER_GB
BG_MEAN_RUN_S = 1800.0

# event kinds, ordered so that at equal times resources are released before they are claimed
END, LOST, OUTAGE_START, OUTAGE_END, STAGED, ARRIVE, BG_ARRIVE = range(7)
NEGOTIATE, PRODUCER, GX_QUEUE, GX_RUNTIME, OUTCOMES, REFRESH, SAMPLE = range(7, 14)


@dataclass(eq=False)
class Task:
    """One HTCondor job: a Galaxy attempt, or a local user's job (`job is None`)."""

    cores: int
    mem_mb: float
    gpus: int
    run_s: float
    job: Job | None = None
    attempt: int = 0
    dest: str = ""
    site: str = ""
    routed: float = 0.0
    staged: float = 0.0
    started: float = math.nan
    ends_at: float = math.nan  # when the running task's END event is due (known at its start)
    ended: float = math.nan
    fails: bool = False
    fail_after: float = 0.5
    machine: int = -1
    state: str = "staging"  # staging | idle | running | done | lost
    transfer_s: float = 0.0
    bytes_km: float = 0.0


@dataclass
class JobRecord:
    job: Job
    attempts: list[Task] = field(default_factory=list)
    outcome: str = "pending"  # ok | failed | unfinished
    finished: float = math.nan

    @property
    def turnaround(self) -> float:
        return self.finished - self.job.submit


def first_fit(free: list[list[float]], cores: float, mem_mb: float, gpus: float) -> int:
    """The first machine (index into `free`: [cores, memory MB, GPUs] each) the job fits on,
    else -1: HTCondor's negotiator as the simulator models it."""
    for i, (c, m, g) in enumerate(free):
        if c >= cores and m >= mem_mb and g >= gpus:
            return i
    return -1


class SiteState:
    def __init__(self, name: str, conf: Site, index: int, negotiation_s: float):
        self.name = name
        self.conf = conf
        mem = conf.memory_gb_per_machine * MB_PER_GB
        self.free = [
            [conf.cores_per_machine, mem, conf.gpus_per_machine] for _ in range(conf.machines)
        ]
        self.total = (conf.cores, conf.machines * mem, conf.machines * conf.gpus_per_machine)
        self.idle: list[Task] = []
        self.running: set[Task] = set()
        # Galaxy attempts routed here whose inputs are still staging, in routing order
        # (a dict as an ordered set); they join `idle` at their STAGED event
        self.staging: dict[Task, None] = {}
        self.up = True
        self.negotiation_due: float | None = None
        # each pool has its own negotiator and producer phase
        self.phase = (index * 7.919) % negotiation_s
        self.busy_cores = 0

    def fits_anywhere(self, task: Task) -> int:
        return first_fit(self.free, task.cores, task.mem_mb, task.gpus)

    def claim(self, task: Task, i: int) -> None:
        f = self.free[i]
        f[0] -= task.cores
        f[1] -= task.mem_mb
        f[2] -= task.gpus
        task.machine = i
        self.busy_cores += task.cores
        self.running.add(task)

    def release(self, task: Task) -> None:
        f = self.free[task.machine]
        f[0] += task.cores
        f[1] += task.mem_mb
        f[2] += task.gpus
        self.busy_cores -= task.cores
        self.running.discard(task)

    def usage_fields(self) -> dict:
        cpus_free = sum(f[0] for f in self.free)
        mem_free = sum(f[1] for f in self.free)
        gpus_free = sum(f[2] for f in self.free)
        largest = max(self.free, key=lambda f: (f[0], f[1], f[2]))
        return {
            "cpus": self.total[0],
            "cpus_free": cpus_free,
            "memory_mb": int(self.total[1]),
            "memory_mb_free": int(mem_free),
            "gpus": self.total[2],
            "gpus_free": gpus_free,
            "jobs_idle": len(self.idle),
            "jobs_running": len(self.running),
            "jobs_held": 0,
            "largest_free_cpus": largest[0],
            "largest_free_memory_mb": int(largest[1]),
        }


@dataclass
class Result:
    scenario: str
    policy: str
    seed: int
    records: list[JobRecord]
    start: float
    end_of_window: float
    utilisation: float
    timeline: dict[str, list[tuple[float, int, int]]]  # site -> (t_h, idle, running)
    rank_calls: int = 0
    views_built: int = 0
    max_overcommit: int = 0  # most negative free resource ever seen (0: never exceeded)


class Simulation:
    def __init__(self, scenario: Scenario, policy_name: str, seed: int, settings: Settings):
        from broker.sim.policies import make_policy

        self.sc = scenario
        self.seed = seed
        self.settings = settings
        self.network = Network.build(scenario, rng_for(seed, "network"))
        self.start = math.ceil(scenario.history_h / 24) * 86400.0
        self.window_end = self.start + scenario.duration_h * HOUR
        self.hard_stop = self.window_end + scenario.drain_h * HOUR
        self.jobs = generate(scenario, seed, self.start)
        self.sites = {
            name: SiteState(name, conf, i, scenario.negotiation_interval_s)
            for i, (name, conf) in enumerate(scenario.sites.items())
        }
        self.pipeline = MetricPipeline(scenario.pipeline, settings)
        self.tpv = {tool: tpv_order(scenario, tool) for tool in scenario.tools}
        self.history_policy = make_policy("weighted_random", self)
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

    def failure_probability(self, site: str, tool: str, t: float) -> tuple[float, float]:
        rel_h = (t - self.start) / HOUR
        for f in self.sc.failures:
            if f.site == site and f.tool == tool and f.from_h <= rel_h < f.to_h:
                return f.probability, f.after_fraction
        s, k = self.sc.sites[site].failure_rate, self.sc.tools[tool].failure_rate
        return 1 - (1 - s) * (1 - k), 0.5

    def run_s(self, job: Job, site: str) -> float:
        """The job's true run time at `site` (a whole, successful run)."""
        return self.sc.tools[job.tool].run_median_s * job.run_factor * self.sc.sites[site].speed

    def outcome(
        self, job: Job, attempt: int, site: str, run_s: float, t: float
    ) -> tuple[bool, float]:
        """Whether this attempt of `job` fails if it starts at `site` at `t`, and how long it
        then runs (a failure comes part-way through the run)."""
        p, after = self.failure_probability(site, job.tool, t)
        fails = job.fail_u[attempt] < p
        return fails, run_s * after if fails else run_s

    # --- Galaxy ---

    def route(self, job: Job, attempt: int) -> None:
        policy = self.policy if self.now >= self.start else self.history_policy
        dest = policy.choose(job, attempt, self.now)
        site = self.network.site_of_dest[dest]
        tool = self.sc.tools[job.tool]
        seconds, _moved, bytes_km = self.network.transfer(job.datasets, site)
        task = Task(
            cores=tool.cores,
            mem_mb=tool.mem_gb * MB_PER_GB,
            gpus=tool.gpus,
            run_s=self.run_s(job, site),
            job=job,
            attempt=attempt,
            dest=dest,
            site=site,
            routed=self.now,
            transfer_s=seconds,
            bytes_km=bytes_km,
        )
        self.records[job.id].attempts.append(task)
        self.galaxy_queued[dest] += 1
        self.sites[site].staging[task] = None
        self.at(self.now + seconds, STAGED, task)

    def attempt_over(self, task: Task, ok: bool) -> None:
        job = task.job
        assert job is not None
        rec = self.records[job.id]
        if task.state != "lost":
            task.state = "done"
        self.pipeline.record_outcome(self.now, task.dest, job.tool, ok)
        if ok:
            self.pipeline.record_run(
                self.now, task.dest, job.tool, task.started - task.routed, task.ended - task.started
            )
            self._resolve(rec, "ok")
        elif task.attempt + 1 < self.sc.max_attempts:
            self.route(job, task.attempt + 1)
        else:
            self._resolve(rec, "failed")

    def _resolve(self, rec: JobRecord, outcome: str) -> None:
        rec.outcome = outcome
        rec.finished = self.now
        if rec.job.measured:
            self.unresolved -= 1

    # --- HTCondor ---

    def want_negotiation(self, site: SiteState) -> None:
        if not site.up or not site.idle or site.negotiation_due is not None:
            return
        step = self.sc.negotiation_interval_s
        due = site.phase + math.floor((self.now - site.phase) / step + 1) * step
        site.negotiation_due = due
        self.at(due, NEGOTIATE, site)

    def negotiate(self, site: SiteState) -> None:
        site.negotiation_due = None
        if not site.up:
            return
        waiting = []
        most_free = max(f[0] for f in site.free)
        for task in site.idle:
            i = site.fits_anywhere(task) if task.cores <= most_free else -1
            if i < 0:
                waiting.append(task)
                continue
            self._account_busy()
            site.claim(task, i)
            self.max_overcommit = min(self.max_overcommit, *(min(f) for f in site.free))
            most_free = max(f[0] for f in site.free)
            task.started = self.now
            task.state = "running"
            if task.job is not None:
                self.galaxy_queued[task.dest] -= 1
                self.galaxy_running[task.dest] += 1
                task.fails, duration = self.outcome(
                    task.job, task.attempt, site.name, task.run_s, self.now
                )
            else:
                duration = task.run_s
            task.ends_at = self.now + duration
            self.at(task.ends_at, END, task)
        site.idle = waiting

    def _account_busy(self) -> None:
        """Integrate busy cores over the measured window (utilisation)."""
        lo, hi = max(self._busy_t, self.start), min(self.now, self.window_end)
        if hi > lo:
            busy = sum(s.busy_cores for s in self.sites.values())
            self.busy_integral += busy * (hi - lo)
        self._busy_t = self.now

    def end(self, task: Task) -> None:
        if task.state != "running":
            return  # lost in an outage; LOST handles it
        site = self.sites[task.site]
        self._account_busy()
        site.release(task)
        task.ended = self.now
        if task.job is not None:
            self.galaxy_running[task.dest] -= 1
            self.attempt_over(task, not task.fails)
        self.want_negotiation(site)

    def outage(self, site: SiteState, starting: bool) -> None:
        if starting:
            site.up = False
            self._account_busy()
            for task in sorted(site.running, key=lambda t: t.started):
                site.release(task)
                task.state = "lost"
                task.ended = self.now
                if task.job is not None:
                    self.galaxy_running[task.dest] -= 1
                    self.at(self.now + self.sc.outage_detect_s, LOST, task)
        else:
            site.up = True
            self.want_negotiation(site)

    def background(self, site: SiteState) -> None:
        conf = site.conf
        if conf.background_load <= 0:
            return
        rng = self._bg_rng[site.name]
        cores = int(min(conf.cores_per_machine, rng.integers(1, 5)))
        run = BG_MEAN_RUN_S * math.exp(rng.normal(-0.5, 1.0))  # lognormal, mean 1800 s
        if site.up:
            task = Task(cores, cores * BG_MEM_MB_PER_CORE, 0, run, state="idle", site=site.name)
            site.idle.append(task)
            self.want_negotiation(site)
        rate = conf.background_load * conf.cores / (2.5 * BG_MEAN_RUN_S)
        self.at(self.now + rng.exponential(1 / rate), BG_ARRIVE, site)

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
                payload.staged = t
                payload.state = "idle"
                site = self.sites[payload.site]
                del site.staging[payload]
                site.idle.append(payload)
                self.want_negotiation(site)
            elif kind == ARRIVE:
                self.route(payload, 0)
            elif kind == BG_ARRIVE:
                self.background(payload)
            elif kind == PRODUCER:
                if payload.up:
                    self.pipeline.cluster_usage(t, payload.name, payload.usage_fields())
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
        )

    def fork(
        self, policy_name: str, settings: Settings | None = None, label: str = ""
    ) -> Simulation:
        """A copy of this simulation (at the end of the history) that routes with another
        policy (and broker settings) from now on: the history is the same for every policy,
        so it is run once."""
        from broker.sim.policies import make_policy

        twin = copy.deepcopy(self)
        if settings is not None:
            twin.settings = settings
            twin.pipeline.settings = settings
            twin.pipeline.invalidate()
        twin.policy = make_policy(policy_name, twin)
        twin.policy_name = label or policy_name
        return twin


def simulate_policies(
    scenario: Scenario, policies: list[str], seed: int, settings: Settings | None = None
) -> list[Result]:
    """Run `policies` on the same jobs, network and history (one seed)."""
    from broker.sim.network import broker_settings

    base = Simulation(scenario, "weighted_random", seed, settings or broker_settings(scenario))
    base.schedule_all()
    base.advance(base.start)
    return [base.fork(name).finish() for name in policies]


def simulate(
    scenario: Scenario, policy: str, seed: int, settings: Settings | None = None
) -> Result:
    from broker.sim.network import broker_settings

    sim = Simulation(scenario, policy, seed, settings or broker_settings(scenario))
    sim.schedule_all()
    return sim.finish()
