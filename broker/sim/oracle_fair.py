"""`oracle_fair`: the reference the broker can fairly be asked to approach.

The `oracle` (broker/sim/oracle.py) knows two things no router can: each pool's negotiation
phase (so it knows to the second when a cycle will pick the job up) and whether this very
attempt, and each attempt ahead of it, will fail (so it never sends a doomed attempt and knows
exactly when a failing job ahead frees its slot). Without that foresight it barely beats the
broker on short jobs, which made it a poor yardstick for the ranking.

`OracleFair` is the same greedy replay of each candidate pool's negotiator from the true state
(free resources of every machine, the idle queue in order, the attempts still staging there,
the true bandwidths and the true run time of this job and of every job ahead), with what a
perfect *monitoring* system could know, and no more:

- **No negotiation phase.** A cycle is taken to come, on average, half an interval after the
  change that asks for it (a job queued, a slot freed), as it does for a pool whose phase is
  unknown (uniform); a cycle already pending likewise comes half an interval after the
  decision.
- **No foresight of failures.** A Galaxy attempt ahead in the queue or running runs its whole
  run time (its failure, if any, is not known before it happens). This attempt's cost is the
  expectation over the site's true failure probability for the tool at its start (a rate is
  the state of the site, which monitoring can estimate; the outcome of this attempt is not):
  `(1 - p) x run + p x (run x after_fraction + resubmission)`, where a resubmission costs its
  best case (fastest staging + run over the candidates, no wait) and, on the last attempt,
  failing for good costs the time left until the simulation's hard stop (the job would never
  finish), at least that best case.

Everything else (greedy, blind to later arrivals and outages, never routes to a site that is
down while another candidate is up) is the oracle's; it is a reference, not a bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.sim.oracle import Oracle

if TYPE_CHECKING:
    from broker.sim.pools import SiteState, Task
    from broker.sim.workload import Job


class OracleFair(Oracle):
    """The true state without the negotiation phase or the outcome of an attempt before it
    happens (see the module docstring)."""

    name = "oracle_fair"

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
        p, after = self.sim.runs.failure_probability(site, job.tool, start)
        again = max(self.sim.hard_stop - now, retry) if last else retry
        return False, start - now + (1 - p) * run + p * (run * after + again)

    def _first_tick(self, site: SiteState, now: float) -> float | None:
        if site.negotiation_due is None:
            return None
        return now + self.sim.sc.negotiation_interval_s / 2

    def _next_tick(self, site: SiteState, t: float, step: float) -> float:
        return t + step / 2

    def _duration(self, task: Task, site: str, t: float) -> float:
        return task.run_s  # the whole run: whether it fails is not known before it does

    def _running_end(self, task: Task) -> float:
        return task.started + task.run_s if task.job is not None else task.ends_at
