"""Time a job waits at each candidate destination before it starts.

From the site's live HTCondor state, in resources rather than job counts (a 24-core job does
not start when one 1-core job ends). The pool drains its running work at
`used cores / typical run time` cores per second (the same for memory); the job starts once the
work queued ahead of it, plus itself, fits in what is free, and at least one machine has a hole
of its size. Jobs the broker routed there since the last report count as already taken
(`broker.ranking.routed`). The tool's historical queue time, measured under another load, is
the wait at a site with no live state, and a lower bound for a job that has to queue.

Every candidate of every job goes through this, so it is written over arrays: what depends
only on the pool is derived once per metrics refresh (`broker.ranking.pool`) and kept with the
candidate list as columns; a request is some fifty array operations for all its candidates at
once, a fixed cost that beats a per-candidate loop from about 15 candidates on (in
instructions: 319 k against 839 k at 50, 310 k against 206 k at 12; docs/ranking-model.md,
"Performance"). Lanes that do not apply (a stale pool's live wait, say) are computed and then
masked out. The text that explains a number is formatted only when someone asks
(`wait_note`), from one candidate's `Wait`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from broker.config import RankingSettings
from broker.metrics.freshness import current_since
from broker.ranking.pool import Pool, PoolColumns, missing_note, never_fits
from broker.ranking.query import Job
from broker.ranking.routed import InFlight

FRESH, STALE, CANNOT_FIT = 0, 1, 2
STATE_NAMES = ("fresh", "stale", "cannot_fit")

Floats = NDArray[np.float64]


class Wait(NamedTuple):
    """One candidate's wait and state, with what its explanation is written from."""

    state: int  # FRESH, STALE or CANNOT_FIT
    seconds: float  # inf when the job can never fit
    historical_s: float  # the tool's median queue time here; NaN: too few runs
    # From the live pool state (fresh pools that can hold the job only):
    live_s: float
    ahead: float  # jobs queued ahead
    hole_cpus: float  # largest free slot, after what is in flight
    hole_memory_mb: float
    has_hole: bool
    fits_now: bool


_NO_LIVE = (math.nan, 0.0, 0.0, 0.0, False, False)  # the live fields of a stale or too-small pool


@dataclass(frozen=True, slots=True)
class Sent:
    """What the broker routed to each candidate's site since that site's last report."""

    jobs: Floats
    cores: Floats
    mem_mb: Floats
    gpus: Floats

    def at(self, i: int) -> InFlight:
        return InFlight(
            int(self.jobs[i]), *map(float, (self.cores[i], self.mem_mb[i], self.gpus[i]))
        )


_NOTHING_SENT = Sent(*(np.zeros(()) for _ in range(4)))  # nothing anywhere: zeros, broadcast


@dataclass(frozen=True, slots=True)
class Waits:
    """Every candidate's wait, in TPV's order. The live fields (`live_s` on) mean something
    only where the state is FRESH; `at` gives one candidate's `Wait` with them cleared
    elsewhere."""

    state: NDArray[np.int64]
    seconds: Floats
    historical_s: Floats
    live_s: Floats
    ahead: Floats
    hole_cpus: Floats
    hole_memory_mb: Floats
    has_hole: NDArray[np.bool_]
    fits_now: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.state)

    def at(self, i: int) -> Wait:
        state, seconds, hist = (
            int(self.state[i]),
            float(self.seconds[i]),
            float(self.historical_s[i]),
        )
        if state != FRESH:
            return Wait(state, seconds, hist, *_NO_LIVE)
        return Wait(
            state, seconds, hist, float(self.live_s[i]), float(self.ahead[i]),
            float(self.hole_cpus[i]), float(self.hole_memory_mb[i]),
            bool(self.has_hole[i]), bool(self.fits_now[i]),
        )  # fmt: skip


def waits(
    settings: RankingSettings,
    pools: PoolColumns,
    job: Job,
    now: float,
    staleness_s: float,
    historical_s: Floats,
    sent: Sent | None = None,
) -> Waits:
    """Each candidate's wait. `historical_s`: the tool's median queue time at each candidate,
    NaN when it has too few runs there; `sent`: what the broker routed to each candidate's
    site since its last report, None when nothing is in flight anywhere."""
    cores, mem, gpus = job.cores, job.mem_mb, job.gpus
    dispatch = settings.dispatch_s
    since = current_since(now, staleness_s)
    hist = historical_s
    stale = pools.time_s < since
    too_small = (cores > pools.cpus) | (mem > pools.memory_mb) | (gpus > pools.gpus)
    if sent is None:
        hole_cpus, hole_mem, hole_gpus = pools.hole_cpus, pools.hole_memory_mb, pools.hole_gpus
        sent = _NOTHING_SENT
    else:
        hole_cpus = np.minimum(pools.largest_free_cpus, pools.cpus_free - sent.cores)
        hole_mem = np.minimum(pools.largest_free_memory_mb, pools.memory_mb_free - sent.mem_mb)
        hole_gpus = np.minimum(pools.largest_free_gpus, pools.gpus_free - sent.gpus)
    has_hole = (hole_cpus >= cores) & (hole_mem >= mem)
    if gpus:
        has_hole &= hole_gpus >= gpus
    ahead = np.maximum(pools.jobs_idle, np.where(pools.queued_time_s >= since, pools.queued, 0.0))
    fits_now = has_hole & (ahead == 0)
    # The work ahead, in resources: each waiting job sized like the running ones, plus
    # what the broker has just routed here, drained at the pool's rate. Without a hole of
    # the job's size the free resources are fragments the jobs ahead backfill as they
    # open: they count as none, and each job ahead costs about one run while it holds the
    # hole the job needs.
    need_cpus = ahead * pools.cpus_per_job + (cores + sent.cores)
    need_mem = ahead * pools.memory_mb_per_job + (mem + sent.mem_mb)
    need_cpus = np.where(has_hole, need_cpus - pools.cpus_free, need_cpus)
    need_mem = np.where(has_hole, need_mem - pools.memory_mb_free, need_mem)
    queue_s = np.maximum(
        np.maximum(need_cpus, 0.0) * pools.s_per_cpu,
        np.maximum(need_mem, 0.0) * pools.s_per_memory_mb,
    )
    one_run_each = (ahead + 1 + sent.jobs) * pools.typical_run_s
    queue_s = np.where(has_hole, queue_s, np.maximum(queue_s, one_run_each))
    if gpus:
        need_gpus = ahead * pools.gpus_per_job + (gpus + sent.gpus)
        need_gpus = np.where(has_hole, need_gpus - pools.gpus_free, need_gpus)
        queue_s = np.maximum(queue_s, np.maximum(need_gpus, 0.0) * pools.s_per_gpu)
    live = np.where(fits_now, dispatch, queue_s + dispatch)
    # A job that has to queue waits at least as long as this tool has queued here (starvation
    # of big jobs by backfill is invisible in one snapshot); NaN history compares False.
    fresh_s = np.where(fits_now | ~(hist > live), live, hist)
    stale_s = np.where(np.isnan(hist), settings.default_wait_s, hist)
    seconds = np.where(stale, stale_s, np.where(too_small, math.inf, fresh_s))
    state = np.where(stale, STALE, np.where(too_small, CANNOT_FIT, FRESH))
    return Waits(state, seconds, hist, live, ahead, hole_cpus, hole_mem, has_hole, fits_now)


def wait_note(wait: Wait, pool: Pool, job: Job, sent: InFlight, settings: RankingSettings) -> str:
    """Where a candidate's wait came from (for `?explain=true`)."""
    hist = wait.historical_s
    if wait.state == STALE:
        if math.isnan(hist):
            return f"no data: default {settings.default_wait_s:.0f} s"
        return f"historical median {hist:.0f} s"
    lacks = missing_note(pool)
    if wait.state == CANNOT_FIT:
        return f"cannot fit: {never_fits(pool.cpus, pool.memory_mb, pool.gpus, job)}{lacks}"
    just_sent = f", {sent.jobs} just routed here" if sent.jobs else ""
    if wait.fits_now:
        return (
            f"fits now (largest free slot {wait.hole_cpus:.0f} cores, "
            f"{wait.hole_memory_mb:.0f} MB{just_sent}){lacks}"
        )
    hole = "" if wait.has_hole else f" but no hole of {job.cores} cores / {job.mem_mb:.0f} MB"
    if math.isinf(pool.cpus):
        drain = f"a typical run ({pool.typical_run_s:.0f} s) per job ahead"
        of = ""
    else:
        rate = (pool.cpus - pool.cpus_free) / pool.typical_run_s * 60
        drain = f"draining ~{rate:.1f} cores/min"
        of = f" of {pool.cpus:.0f}"
    text = (
        f"no free slot now: {wait.ahead:.0f} jobs queued ahead{just_sent}; "
        f"{pool.cpus_free:.0f} cores free{of}{hole}, {drain} -> {wait.live_s:.0f} s"
    )
    if hist > wait.live_s:
        text += f"; historical median {hist:.0f} s"
    return text + lacks
