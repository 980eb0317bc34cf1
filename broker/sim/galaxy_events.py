"""What Galaxy does with a job in the simulation: TPV's candidates go to the policy, Pulsar stages
the inputs to the chosen site, and a failed or lost attempt is resubmitted through the policy
until `max_attempts`; the outcome collector and gxadmin see every attempt that ends.

A mixin of `broker.sim.engine.Simulation`, kept apart so that the Galaxy side reads on its own;
the attributes below are the simulation's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from broker.sim.events import STAGED
from broker.sim.pools import SiteState, Task
from broker.sim.results import JobRecord
from broker.sim.workload import Job
from metric_contract.units import MB_PER_GB

if TYPE_CHECKING:
    from broker.sim.network import Network
    from broker.sim.pipeline import MetricPipeline
    from broker.sim.runs import RunModel
    from broker.sim.scenario import Scenario


class Router(Protocol):
    """What Galaxy needs of a policy: a destination for an attempt (`calls`: how many
    times it asked the ranking, reported with the result)."""

    calls: int

    def choose(self, job: Job, attempt: int, now: float) -> str: ...


class GalaxyEvents:
    """Galaxy's and Pulsar's side of the simulation (see the module docstring)."""

    sc: Scenario
    now: float
    start: float
    policy: Router
    history_policy: Router
    network: Network
    runs: RunModel
    pipeline: MetricPipeline
    sites: dict[str, SiteState]
    records: dict[int, JobRecord]
    galaxy_queued: dict[str, int]
    unresolved: int
    at: Callable[..., None]

    def route(self, job: Job, attempt: int) -> None:
        """Route this attempt now (today's policy before the measured window) and stage it."""
        policy = self.policy if self.now >= self.start else self.history_policy
        dest = policy.choose(job, attempt, self.now)
        site = self.network.site_of_dest[dest]
        tool = self.sc.tools[job.tool]
        seconds, _moved, bytes_km = self.network.transfer(job.datasets, site)
        task = Task(
            cores=tool.cores,
            mem_mb=tool.mem_gb * MB_PER_GB,
            gpus=tool.gpus,
            run_s=self.runs.run_s(job, site),
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
        """An attempt ended (or Galaxy noticed it was lost): record it, resubmit or resolve."""
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
