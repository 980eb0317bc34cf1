"""An HTCondor pool as the simulator models it: its machines' partitionable slots, its queue and
what its producer reports.

A job needs its cores, memory and GPUs on one machine; the negotiator gives it the first machine
that can hold it (no reservations, no defragmentation). `Machines` is the one place free
resources are taken and given back: the engine runs the pool with it, and the oracle replays a
copy of it to see when a job would start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from broker.sim.scenario import Site
from broker.sim.workload import Job
from metric_contract.units import MB_PER_GB


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


def first_fit(free: list[list[float]], cores: float, mem_mb: float, gpus: float) -> int:
    """The first machine (index into `free`: [cores, memory MB, GPUs] each) the job fits on,
    else -1: HTCondor's negotiator as the simulator models it."""
    for i, (c, m, g) in enumerate(free):
        if c >= cores and m >= mem_mb and g >= gpus:
            return i
    return -1


class Machines:
    """The free cores, memory (MB) and GPUs of each machine of a pool, in the pool's order.

    Resources are subtracted and added back one field at a time, in the same order wherever a
    pool is run or replayed, so that a replay's free figures are bit for bit the engine's."""

    def __init__(self, free: list[list[float]]):
        self.free = free

    @classmethod
    def empty(cls, conf: Site) -> Machines:
        mem = conf.memory_gb_per_machine * MB_PER_GB
        return cls(
            [[conf.cores_per_machine, mem, conf.gpus_per_machine] for _ in range(conf.machines)]
        )

    def copy(self) -> Machines:
        """An independent copy, for a replay that must not touch the pool."""
        return Machines([list(f) for f in self.free])

    def first_fit(self, cores: float, mem_mb: float, gpus: float) -> int:
        return first_fit(self.free, cores, mem_mb, gpus)

    def most_cores(self) -> float:
        """The most free cores of any machine: a job needing more fits nowhere (a cheap test
        before the full first-fit scan)."""
        return max(f[0] for f in self.free)

    def claim(self, i: int, cores: float, mem_mb: float, gpus: float) -> None:
        f = self.free[i]
        f[0] -= cores
        f[1] -= mem_mb
        f[2] -= gpus

    def release(self, i: int, cores: float, mem_mb: float, gpus: float) -> None:
        f = self.free[i]
        f[0] += cores
        f[1] += mem_mb
        f[2] += gpus

    def lowest(self) -> float:
        """The most negative free figure of any machine (>= 0 while capacity holds)."""
        return min(min(f) for f in self.free)


class SiteState:
    """One pool during a run: machines, the idle queue in order, running and staging jobs."""

    def __init__(self, name: str, conf: Site, index: int, negotiation_s: float):
        self.name = name
        self.conf = conf
        self.machines = Machines.empty(conf)
        mem = conf.memory_gb_per_machine * MB_PER_GB
        self.total = (conf.cores, conf.machines * mem, conf.machines * conf.gpus_per_machine)
        self.idle: list[Task] = []
        # in the order the negotiator started them (a dict as an ordered set): a set of tasks
        # iterates in memory-address order, and the order jobs lost together are resubmitted
        # in would then depend on what ran earlier in the process
        self.running: dict[Task, None] = {}
        # Galaxy attempts routed here whose inputs are still staging, in routing order
        # (a dict as an ordered set); they join `idle` at their STAGED event
        self.staging: dict[Task, None] = {}
        self.up = True
        self.negotiation_due: float | None = None
        # each pool has its own negotiator and producer phase
        self.phase = (index * 7.919) % negotiation_s
        self.busy_cores = 0

    def next_negotiation(self, t: float, step: float) -> float:
        """The first of this pool's negotiation cycles (every `step` seconds from its phase)
        strictly after `t`: when a change at `t` (a job queued, a slot freed) is acted on."""
        return self.phase + math.floor((t - self.phase) / step + 1) * step

    @property
    def free(self) -> list[list[float]]:
        return self.machines.free

    def fits_anywhere(self, task: Task) -> int:
        return self.machines.first_fit(task.cores, task.mem_mb, task.gpus)

    def claim(self, task: Task, i: int) -> None:
        self.machines.claim(i, task.cores, task.mem_mb, task.gpus)
        task.machine = i
        self.busy_cores += task.cores
        self.running[task] = None

    def release(self, task: Task) -> None:
        self.machines.release(task.machine, task.cores, task.mem_mb, task.gpus)
        self.busy_cores -= task.cores
        self.running.pop(task, None)

    def usage_fields(self) -> dict:
        """The producer's `htcondor_cluster_usage` fields for this pool, now."""
        free = self.machines.free
        cpus_free = sum(f[0] for f in free)
        mem_free = sum(f[1] for f in free)
        gpus_free = sum(f[2] for f in free)
        largest = max(free, key=lambda f: (f[0], f[1], f[2]))
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
