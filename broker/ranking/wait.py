"""Time a job waits at each candidate destination before it starts.

From the site's live HTCondor state, in resources rather than job counts (a 24-core job does
not start when one 1-core job ends). The pool drains its running work at
`used cores / typical run time` cores per second (the same for memory); the job starts once the
work queued ahead of it, plus itself, fits in what is free, and at least one machine has a hole
of its size. Jobs the broker routed there since the last report count as already taken
(`broker.ranking.routed`). The tool's historical queue time, measured under another load, is
the wait at a site with no live state, and a lower bound for a job that has to queue.

Every candidate of every job goes through this. What depends only on the pool is derived once
per metrics refresh (`Pool`; per request only for a destination the config does not know); a
request does a few float operations per candidate, and the text that explains a number is
formatted only when someone asks (`wait_note`). Plain floats, not arrays: for the tens of candidates
TPV sends, array operations cost more to dispatch than they save.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

from broker.config import RankingSettings
from broker.metrics.freshness import current_since
from broker.metrics.series import OWN_SHAPE, ClusterUsage, QueueCount
from broker.ranking.query import Job
from broker.ranking.routed import NOTHING, InFlight

FRESH, STALE, CANNOT_FIT = 0, 1, 2
STATE_NAMES = ("fresh", "stale", "cannot_fit")


@dataclass(frozen=True, slots=True)
class Pool:
    """A destination's pool as the wait model reads it, built once per metrics refresh."""

    time_s: float  # of the pool's cluster-usage point; -inf when there is none
    cpus: float
    memory_mb: float
    gpus: float
    cpus_free: float
    memory_mb_free: float
    gpus_free: float
    largest_free_cpus: float
    largest_free_memory_mb: float
    largest_free_gpus: float
    jobs_idle: float
    queued: float  # Galaxy's queued jobs for the destination, from the newest gxadmin run
    queued_time_s: float  # of that row; -inf when it does not count
    typical_run_s: float  # of the destination: how fast its pool drains
    # derived, so that a request does less arithmetic:
    hole_cpus: float  # largest free slot, at most what is free
    hole_memory_mb: float
    hole_gpus: float
    cpus_per_job: float  # used / running: the size of a job ahead
    memory_mb_per_job: float
    gpus_per_job: float
    s_per_cpu: float  # typical_run / used: seconds until one more core is free
    s_per_memory_mb: float
    s_per_gpu: float
    shape: str = OWN_SHAPE  # the producer's shape the pool state came in
    missing: tuple[str, ...] = ()  # figures that shape lacks (`ClusterUsage.missing`)


# A pool without a cluster-usage point: empty, and stale at any time.
_FIGURES: dict[str, Any] = {f.name: 0.0 for f in fields(ClusterUsage) if f.type == "float"}
_NEVER_REPORTED = ClusterUsage(**{**_FIGURES, "site": "", "time_s": -math.inf})


def pool_of(usage: ClusterUsage | None, typical_run_s: float, queued: QueueCount | None) -> Pool:
    """One destination's pool. `queued` is None for a queue row that does not count (none, or
    older than the newest gxadmin run: a drained queue writes no row)."""
    queue = (queued.count, queued.time_s) if queued else (0.0, -math.inf)
    u = _NEVER_REPORTED if usage is None else usage
    running = max(u.jobs_running, 1.0)
    used_cpus = u.cpus - u.cpus_free
    used_mem = u.memory_mb - u.memory_mb_free
    used_gpus = u.gpus - u.gpus_free
    gpus = math.inf if "gpus" in u.missing else u.gpus
    pool = Pool(
        time_s=u.time_s,
        cpus=u.cpus,
        memory_mb=u.memory_mb,
        gpus=gpus,
        cpus_free=u.cpus_free,
        memory_mb_free=u.memory_mb_free,
        gpus_free=u.gpus_free,
        largest_free_cpus=u.largest_free_cpus,
        largest_free_memory_mb=u.largest_free_memory_mb,
        largest_free_gpus=u.largest_free_gpus,
        jobs_idle=u.jobs_idle,
        queued=queue[0],
        queued_time_s=queue[1],
        typical_run_s=typical_run_s,
        hole_cpus=min(u.largest_free_cpus, u.cpus_free),
        hole_memory_mb=min(u.largest_free_memory_mb, u.memory_mb_free),
        hole_gpus=min(u.largest_free_gpus, u.gpus_free),
        cpus_per_job=used_cpus / running,
        memory_mb_per_job=used_mem / running,
        gpus_per_job=used_gpus / running,
        s_per_cpu=typical_run_s / max(used_cpus, 1.0),
        s_per_memory_mb=typical_run_s / max(used_mem, 1.0),
        s_per_gpu=typical_run_s / max(used_gpus, 1.0),
        shape=u.shape,
        missing=u.missing,
    )
    if u.totals_known:
        return pool
    # A pool known only by its free slots (ansible-pulsar-util's histogram): its size is
    # unknown, so no job is too big for it, and the work ahead cannot be sized in resources: a
    # job that fits a free slot starts, one that fits none waits a typical run per job ahead and
    # for itself (`waits`, the branch without a hole). GPUs unknown: no free GPU slot is known.
    return replace(
        pool,
        cpus=math.inf,
        memory_mb=math.inf,
        gpus=math.inf,
        gpus_free=0.0,
        largest_free_gpus=0.0,
        hole_gpus=0.0,
        cpus_per_job=0.0,
        memory_mb_per_job=0.0,
        gpus_per_job=0.0,
        s_per_cpu=0.0,
        s_per_memory_mb=0.0,
        s_per_gpu=0.0,
    )


# What a missing figure means for the wait, for the explanation.
_MISSING_MEANS = {
    "cpus": "pool size unknown, free slots only",
    "gpus": "GPUs unknown",
    "jobs_idle": "jobs ahead from Galaxy's queue only",
    "largest_free_cpus": "largest free slot taken as the free totals",
}


def missing_note(pool: Pool) -> str:
    """What the pool's metric shape lacks and what the wait uses instead, or ""."""
    if not pool.missing:
        return ""
    means = [text for key, text in _MISSING_MEANS.items() if key in pool.missing]
    return f" [{pool.shape}: no {', '.join(pool.missing)}; {'; '.join(means)}]"


def never_fits(cpus: float, memory_mb: float, gpus: float, job: Job) -> str | None:
    """Why the whole pool is too small for the job, or None."""
    if job.cores > cpus:
        return f"asks {job.cores} cores, the pool has {cpus:.0f}"
    if job.mem_mb > memory_mb:
        return f"asks {job.mem_mb:.0f} MB, the pool has {memory_mb:.0f} MB"
    if job.gpus > gpus:
        return f"asks {job.gpus} GPUs, the pool has {gpus:.0f}"
    return None


class Wait(NamedTuple):
    """A candidate's wait and state, with what its explanation is written from."""

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


def waits(
    settings: RankingSettings,
    pools: list[Pool],
    job: Job,
    now: float,
    staleness_s: float,
    historical_s: list[float],
    flight: list[InFlight] | None = None,
) -> list[Wait]:
    """Each candidate's wait. `historical_s`: the tool's median queue time at each candidate,
    NaN when it has too few runs there; `flight`: what the broker routed to each candidate's
    site since its last report, None when nothing is in flight anywhere."""
    cores, mem, gpus = job.cores, job.mem_mb, job.gpus
    dispatch = settings.dispatch_s
    since = current_since(now, staleness_s)
    out = []
    for p, hist, sent in zip(pools, historical_s, flight or [NOTHING] * len(pools), strict=True):
        if p.time_s < since:
            seconds = settings.default_wait_s if math.isnan(hist) else hist
            out.append(Wait(STALE, seconds, hist, *_NO_LIVE))
            continue
        if cores > p.cpus or mem > p.memory_mb or gpus > p.gpus:
            out.append(Wait(CANNOT_FIT, math.inf, hist, *_NO_LIVE))
            continue
        if sent.jobs:
            hole_cpus = min(p.largest_free_cpus, p.cpus_free - sent.cores)
            hole_mem = min(p.largest_free_memory_mb, p.memory_mb_free - sent.mem_mb)
            hole_gpus = min(p.largest_free_gpus, p.gpus_free - sent.gpus)
        else:
            hole_cpus, hole_mem, hole_gpus = p.hole_cpus, p.hole_memory_mb, p.hole_gpus
        has_hole = hole_cpus >= cores and hole_mem >= mem and (not gpus or hole_gpus >= gpus)
        ahead = max(p.jobs_idle, p.queued if p.queued_time_s >= since else 0.0)
        fits_now = has_hole and ahead == 0
        if fits_now:
            live = dispatch
            seconds = live
        else:
            # The work ahead, in resources: each waiting job sized like the running ones,
            # plus what the broker has just routed here, drained at the pool's rate. Without a
            # hole of the job's size the free resources are fragments the jobs ahead backfill
            # as they open: they count as none, and each job ahead costs about one run while
            # it holds the hole the job needs.
            need_cpus = ahead * p.cpus_per_job + (cores + sent.cores)
            need_mem = ahead * p.memory_mb_per_job + (mem + sent.mem_mb)
            if has_hole:
                need_cpus -= p.cpus_free
                need_mem -= p.memory_mb_free
            queue_s = max(max(need_cpus, 0.0) * p.s_per_cpu, max(need_mem, 0.0) * p.s_per_memory_mb)
            if not has_hole:
                queue_s = max(queue_s, (ahead + 1 + sent.jobs) * p.typical_run_s)
            if gpus:
                need_gpus = ahead * p.gpus_per_job + (gpus + sent.gpus)
                if has_hole:
                    need_gpus -= p.gpus_free
                queue_s = max(queue_s, max(need_gpus, 0.0) * p.s_per_gpu)
            live = queue_s + dispatch
            # A job that has to queue waits at least as long as this tool has queued here
            # (starvation of big jobs by backfill is invisible in one snapshot).
            seconds = hist if hist > live else live
        out.append(Wait(FRESH, seconds, hist, live, ahead, hole_cpus, hole_mem, has_hole, fits_now))
    return out


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
