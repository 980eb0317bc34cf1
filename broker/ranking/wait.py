"""Time a job waits at a destination before it starts.

From the site's live HTCondor state: a job that fits in the largest free slot now waits one
dispatch cycle; otherwise slots free up at about `running / typical run time` jobs per second
and the job waits for the jobs queued ahead of it, plus itself. Where the tool's historical
median queue time at the destination is known, the live estimate for a job that does not fit is
combined with it (geometric mean: two independent, noisy estimates of the same wait).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from broker.config import RankingSettings
from broker.metrics.view import ClusterUsage
from broker.ranking.models import JobInfo


@dataclass(frozen=True)
class Wait:
    seconds: float
    fits_ever: bool
    note: str


def never_fits(usage: ClusterUsage, job: JobInfo) -> str | None:
    """Why the whole pool is too small for the job, or None."""
    if job.cores > usage.cpus:
        return f"asks {job.cores} cores, the pool has {usage.cpus:.0f}"
    if job.mem_mb > usage.memory_mb:
        return f"asks {job.mem_mb:.0f} MB, the pool has {usage.memory_mb:.0f} MB"
    if job.gpus > usage.gpus:
        return f"asks {job.gpus} GPUs, the pool has {usage.gpus:.0f}"
    return None


def live_wait(
    settings: RankingSettings,
    usage: ClusterUsage,
    job: JobInfo,
    queued_in_galaxy: float,
    typical_run_s: float,
    historical_queue_s: float | None,
) -> Wait:
    too_big = never_fits(usage, job)
    if too_big:
        return Wait(math.inf, False, f"cannot fit: {too_big}")
    fits_now = (
        usage.largest_free_cpus >= job.cores
        and usage.largest_free_memory_mb >= job.mem_mb
        and usage.largest_free_gpus >= job.gpus
    )
    if fits_now:
        return Wait(
            settings.dispatch_s,
            True,
            f"fits now (largest free slot {usage.largest_free_cpus:.0f} cores, "
            f"{usage.largest_free_memory_mb:.0f} MB)",
        )
    ahead = max(usage.jobs_idle, queued_in_galaxy)
    rate = max(usage.jobs_running, 1.0) / typical_run_s
    drain = settings.dispatch_s + (ahead + 1) / rate
    note = (
        f"no free slot: {ahead:.0f} jobs ahead, {usage.jobs_running:.0f} running "
        f"of ~{typical_run_s:.0f} s each -> {drain:.0f} s"
    )
    if historical_queue_s is not None:
        combined = math.sqrt(drain * max(historical_queue_s, 1.0))
        return Wait(combined, True, f"{note}; with historical median {historical_queue_s:.0f} s")
    return Wait(drain, True, note)


def historical_wait(settings: RankingSettings, historical_queue_s: float | None) -> Wait:
    """Without live state (stale site): the tool's past queue time, else the default."""
    if historical_queue_s is not None:
        return Wait(historical_queue_s, True, f"historical median {historical_queue_s:.0f} s")
    return Wait(settings.default_wait_s, True, f"no data: default {settings.default_wait_s:.0f} s")
