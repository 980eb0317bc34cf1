"""Time a job waits at a destination before it starts.

From the site's live HTCondor state, in resources rather than job counts (a 24-core job does
not start when one 1-core job ends). The pool drains its running work at
`used cores / typical run time` cores per second (the same for memory); the job starts once the
work queued ahead of it, plus itself, fits in what is free, and at least one machine has a hole
of its size. Jobs the broker routed there since the last report count as already taken
(`broker.ranking.routed`). The tool's historical queue time is only a fallback for a site with
no live state: it was measured under another load.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from broker.config import RankingSettings
from broker.metrics.view import ClusterUsage
from broker.ranking.models import JobInfo
from broker.ranking.routed import NOTHING, InFlight


@dataclass(frozen=True)
class Wait:
    seconds: float
    fits_ever: bool
    describe: Callable[[], str]  # formatted only when explained: text costs on the hot path

    @property
    def note(self) -> str:
        return self.describe()


def never_fits(usage: ClusterUsage, job: JobInfo) -> str | None:
    """Why the whole pool is too small for the job, or None."""
    if job.cores > usage.cpus:
        return f"asks {job.cores} cores, the pool has {usage.cpus:.0f}"
    if job.mem_mb > usage.memory_mb:
        return f"asks {job.mem_mb:.0f} MB, the pool has {usage.memory_mb:.0f} MB"
    if job.gpus > usage.gpus:
        return f"asks {job.gpus} GPUs, the pool has {usage.gpus:.0f}"
    return None


def _drain_seconds(need: float, used: float, typical_run_s: float) -> float:
    """Seconds until `need` more units are free, draining `used` units every typical run."""
    if need <= 0:
        return 0.0
    return need * typical_run_s / max(used, 1.0)


def live_wait(
    settings: RankingSettings,
    usage: ClusterUsage,
    job: JobInfo,
    queued_in_galaxy: float,
    typical_run_s: float,
    in_flight: InFlight = NOTHING,
    historical_queue_s: float | None = None,
) -> Wait:
    too_big = never_fits(usage, job)
    if too_big:
        return Wait(math.inf, False, lambda: f"cannot fit: {too_big}")
    free_cores = usage.cpus_free - in_flight.cores
    free_mem = usage.memory_mb_free - in_flight.mem_mb
    free_gpus = usage.gpus_free - in_flight.gpus
    hole_cores = min(usage.largest_free_cpus, free_cores)
    hole_mem = min(usage.largest_free_memory_mb, free_mem)
    hole_gpus = min(usage.largest_free_gpus, free_gpus)
    ahead = max(usage.jobs_idle, queued_in_galaxy)

    def sent() -> str:
        return f", {in_flight.jobs} just routed here" if in_flight.jobs else ""

    if ahead == 0 and hole_cores >= job.cores and hole_mem >= job.mem_mb and hole_gpus >= job.gpus:
        return Wait(
            settings.dispatch_s,
            True,
            lambda: (
                f"fits now (largest free slot {hole_cores:.0f} cores, {hole_mem:.0f} MB{sent()})"
            ),
        )
    no_hole = hole_cores < job.cores or hole_mem < job.mem_mb or hole_gpus < job.gpus
    used_cores = usage.cpus - usage.cpus_free
    used_mem = usage.memory_mb - usage.memory_mb_free
    running = max(usage.jobs_running, 1.0)
    # The work ahead, in resources: each waiting job sized like the running ones, plus what the
    # broker has just routed here.
    ahead_cores = ahead * used_cores / running + in_flight.cores
    ahead_mem = ahead * used_mem / running + in_flight.mem_mb
    free_cores, free_mem = usage.cpus_free, usage.memory_mb_free
    if no_hole:
        # No machine has a hole of the job's size: the free resources are fragments that the
        # jobs ahead backfill as they open, so the job waits for all the work ahead to drain
        # and, job by job, for a machine's current jobs to end.
        free_cores = free_mem = 0.0
    seconds = max(
        _drain_seconds(ahead_cores + job.cores - free_cores, used_cores, typical_run_s),
        _drain_seconds(ahead_mem + job.mem_mb - free_mem, used_mem, typical_run_s),
        # each job ahead backfills the hole the job needs as it opens: about one run each
        typical_run_s * (1 + ahead + in_flight.jobs) if no_hole else 0.0,
    )
    if job.gpus:
        used_gpus = usage.gpus - usage.gpus_free
        need_gpus = ahead * used_gpus / running + in_flight.gpus + job.gpus
        need_gpus -= 0 if no_hole else usage.gpus_free
        seconds = max(seconds, _drain_seconds(need_gpus, used_gpus, typical_run_s))
    wait = settings.dispatch_s + seconds

    def describe() -> str:
        hole = f" but no hole of {job.cores} cores / {job.mem_mb:.0f} MB" if no_hole else ""
        return (
            f"no free slot now: {ahead:.0f} jobs queued ahead{sent()}; "
            f"{usage.cpus_free:.0f} cores free of {usage.cpus:.0f}{hole}, "
            f"draining ~{used_cores / typical_run_s * 60:.1f} cores/min -> {wait:.0f} s"
        )

    if historical_queue_s is not None and historical_queue_s > wait:
        # The job has to queue: how long this tool has queued here bounds it from below
        # (starvation of big jobs by backfill is invisible in one snapshot).
        return Wait(
            historical_queue_s,
            True,
            lambda: f"{describe()}; historical median {historical_queue_s:.0f} s",
        )
    return Wait(wait, True, describe)


def historical_wait(settings: RankingSettings, historical_queue_s: float | None) -> Wait:
    """Without live state (stale site): the tool's past queue time, else the default."""
    if historical_queue_s is not None:
        return Wait(
            historical_queue_s, True, lambda: f"historical median {historical_queue_s:.0f} s"
        )
    default = settings.default_wait_s
    return Wait(default, True, lambda: f"no data: default {default:.0f} s")
