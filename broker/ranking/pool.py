"""A destination's pool as the wait model reads it: built once per metrics refresh.

From the site's cluster-usage point (`broker.metrics.series.ClusterUsage`), the destination's
typical run time and Galaxy's queue for it. What a request would otherwise work out for every
candidate (the largest hole, the size of a job ahead, how fast a core frees) is derived here.
`PoolColumns` holds a candidate list's pools figure by figure, as arrays, so that the wait of
every candidate is a few array operations (`broker.ranking.wait.waits`). The pool of a
destination the config does not know is built per request (`broker.ranking.derived`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from operator import attrgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from broker.metrics.series import OWN_SHAPE, ClusterUsage, QueueCount
from broker.ranking.query import Job


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


@dataclass(frozen=True, slots=True)
class PoolColumns:
    """Candidates' pools, one array per figure (in TPV's order; field names as in `Pool`).
    Built once with a kept candidate list and read by every request that names it; a list
    that cannot be kept (one whose destinations may be placed by the request) is built per
    request. Read-only: kept lists are shared by threads."""

    time_s: NDArray[np.float64]
    cpus: NDArray[np.float64]
    memory_mb: NDArray[np.float64]
    gpus: NDArray[np.float64]
    cpus_free: NDArray[np.float64]
    memory_mb_free: NDArray[np.float64]
    gpus_free: NDArray[np.float64]
    largest_free_cpus: NDArray[np.float64]
    largest_free_memory_mb: NDArray[np.float64]
    largest_free_gpus: NDArray[np.float64]
    jobs_idle: NDArray[np.float64]
    queued: NDArray[np.float64]
    queued_time_s: NDArray[np.float64]
    typical_run_s: NDArray[np.float64]
    hole_cpus: NDArray[np.float64]
    hole_memory_mb: NDArray[np.float64]
    hole_gpus: NDArray[np.float64]
    cpus_per_job: NDArray[np.float64]
    memory_mb_per_job: NDArray[np.float64]
    gpus_per_job: NDArray[np.float64]
    s_per_cpu: NDArray[np.float64]
    s_per_memory_mb: NDArray[np.float64]
    s_per_gpu: NDArray[np.float64]

    @classmethod
    def of(cls, rows: list[NDArray[np.float64]]) -> PoolColumns:
        """From each candidate's `figures` (kept with its destination, so that a list built
        per request costs one array construction, not one per figure)."""
        table = np.array(rows, dtype=np.float64).reshape(-1, len(_NAMES))
        columns = np.ascontiguousarray(table.T)
        columns.setflags(write=False)
        return cls(*columns)


_NAMES = tuple(f.name for f in fields(PoolColumns))
_figures = attrgetter(*_NAMES)


def figures(pool: Pool) -> NDArray[np.float64]:
    """The pool's figures in `PoolColumns`' order: one row of it."""
    return np.array(_figures(pool), dtype=np.float64)
