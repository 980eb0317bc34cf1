"""Time a job waits at each candidate destination before it starts.

From the site's live HTCondor state, in resources rather than job counts (a 24-core job does
not start when one 1-core job ends). The pool drains its running work at
`used cores / typical run time` cores per second (the same for memory); the job starts once the
work queued ahead of it, plus itself, fits in what is free, and at least one machine has a hole
of its size. Jobs the broker routed there since the last report count as already taken
(`broker.ranking.routed`). The tool's historical queue time, measured under another load, is
the wait at a site with no live state, and a lower bound for a job that has to queue.

Every candidate of every job goes through this, so it is computed for all candidates at once:
one row per candidate in a matrix of pool state (`POOL_COLUMNS`, built once per metrics refresh
for the configured destinations), a few array operations per request, and the text that
explains a number formatted only when someone asks (`Waits.note`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from broker.config import RankingSettings
from broker.metrics.view import ClusterUsage, QueueCount
from broker.ranking.models import JobInfo

FRESH, STALE, CANNOT_FIT = 0, 1, 2
STATE_NAMES = ("fresh", "stale", "cannot_fit")

POOL_COLUMNS = (
    "time_s",  # of the pool's cluster-usage point; -inf when there is none
    "cpus",
    "memory_mb",
    "gpus",
    "cpus_free",
    "memory_mb_free",
    "gpus_free",
    "largest_free_cpus",
    "largest_free_memory_mb",
    "largest_free_gpus",
    "jobs_idle",
    "queued",  # Galaxy's queued jobs for the destination, from the newest gxadmin run
    "queued_time_s",  # of that row; -inf when it does not count
    "typical_run_s",  # of the destination: how fast its pool drains
    # derived once per refresh, so that a request does fewer array operations:
    "hole_cpus",  # largest free slot, at most what is free
    "hole_memory_mb",
    "hole_gpus",
    "cpus_per_job",  # used / running: the size of a job ahead
    "memory_mb_per_job",
    "gpus_per_job",
    "s_per_cpu",  # typical_run / used: seconds until one more core is free
    "s_per_memory_mb",
    "s_per_gpu",
)
_COL = {name: i for i, name in enumerate(POOL_COLUMNS)}
# Columns of the in-flight matrix (jobs the broker routed since the site's last report).
FLIGHT_COLUMNS = ("jobs", "cores", "mem_mb", "gpus")


# The columns read straight from the pool's `ClusterUsage` (same names).
_FROM_USAGE = POOL_COLUMNS[: POOL_COLUMNS.index("jobs_idle") + 1]
# Per resource: (total, free, largest free, then the derived hole, per-job and drain columns).
_RESOURCES = (
    ("cpus", "cpus_free", "largest_free_cpus", "hole_cpus", "cpus_per_job", "s_per_cpu"),
    ("memory_mb", "memory_mb_free", "largest_free_memory_mb", "hole_memory_mb",
     "memory_mb_per_job", "s_per_memory_mb"),
    ("gpus", "gpus_free", "largest_free_gpus", "hole_gpus", "gpus_per_job", "s_per_gpu"),
)  # fmt: skip


def pool_row(
    usage: ClusterUsage | None, typical_run_s: float, queued: QueueCount | None
) -> tuple[float, ...]:
    """One destination's row of the pool matrix. `queued` is None for a row that does not
    count (none, or older than the newest gxadmin run: a drained queue writes no row)."""
    row = dict.fromkeys(POOL_COLUMNS, 0.0)
    row.update(
        time_s=-math.inf,
        queued=queued.count if queued else 0.0,
        queued_time_s=queued.time_s if queued else -math.inf,
        typical_run_s=typical_run_s,
    )
    if usage is not None:
        row.update({name: getattr(usage, name) for name in _FROM_USAGE})
        running = max(usage.jobs_running, 1.0)
        for total, free, largest, hole, per_job, s_per_unit in _RESOURCES:
            used = row[total] - row[free]
            row[hole] = min(row[largest], row[free])
            row[per_job] = used / running
            row[s_per_unit] = typical_run_s / max(used, 1.0)
    return tuple(row.values())


def never_fits(cpus: float, memory_mb: float, gpus: float, job: JobInfo) -> str | None:
    """Why the whole pool is too small for the job, or None."""
    if job.cores > cpus:
        return f"asks {job.cores} cores, the pool has {cpus:.0f}"
    if job.mem_mb > memory_mb:
        return f"asks {job.mem_mb:.0f} MB, the pool has {memory_mb:.0f} MB"
    if job.gpus > gpus:
        return f"asks {job.gpus} GPUs, the pool has {gpus:.0f}"
    return None


@dataclass
class Waits:
    """Each candidate's wait (`seconds`) and state (FRESH, STALE, CANNOT_FIT), with the
    intermediate arrays the explanation is written from."""

    settings: RankingSettings
    job: JobInfo
    pools: np.ndarray
    flight: np.ndarray | None
    historical_s: np.ndarray  # NaN: too few runs
    seconds: np.ndarray
    live_s: np.ndarray
    state: np.ndarray
    ahead: np.ndarray
    hole_cores: np.ndarray
    hole_mem: np.ndarray
    no_hole: np.ndarray
    fits_now: np.ndarray

    @classmethod
    def compute(
        cls,
        settings: RankingSettings,
        pools: np.ndarray,
        job: JobInfo,
        now: float,
        staleness_s: float,
        historical_s: np.ndarray,
        flight: np.ndarray | None = None,
    ) -> Waits:
        """`pools`: one `POOL_COLUMNS` row per candidate; `flight`: one `FLIGHT_COLUMNS` row
        per candidate, None when nothing is in flight anywhere. `historical_s`: the tool's
        median queue time at each candidate, NaN when it has too few runs there."""
        (time_s, cpus, mem_mb, gpus, cpus_free, mem_free, gpus_free, big_cpus, big_mem,
         big_gpus, idle, queued, queued_time, typical, hole_cores, hole_mem, hole_gpus,
         cores_per_job, mem_per_job, gpus_per_job, s_per_core, s_per_mb,
         s_per_gpu) = pools.T  # fmt: skip
        cores, mem, n_gpus = job.cores, job.mem_mb, job.gpus
        f_jobs = f_cores = f_mem = f_gpus = 0.0
        if flight is not None:
            f_jobs, f_cores, f_mem, f_gpus = flight.T
            hole_cores = np.minimum(big_cpus, cpus_free - f_cores)
            hole_mem = np.minimum(big_mem, mem_free - f_mem)
            hole_gpus = np.minimum(big_gpus, gpus_free - f_gpus)
        fresh = time_s >= now - staleness_s
        fits_ever = (cpus >= cores) & (mem_mb >= mem)
        has_hole = (hole_cores >= cores) & (hole_mem >= mem)
        if n_gpus:
            fits_ever &= gpus >= n_gpus
            has_hole &= hole_gpus >= n_gpus
        ahead = np.maximum(idle, queued * (queued_time >= now - staleness_s))
        fits_now = has_hole & (ahead == 0)
        # The work ahead, in resources: each waiting job sized like the running ones, plus
        # what the broker has just routed here, drained at the pool's rate. Without a hole of
        # the job's size the free resources are fragments the jobs ahead backfill as they
        # open: they count as none, and each job ahead costs about one run while it holds the
        # hole the job needs.
        need_cores = ahead * cores_per_job + (cores + f_cores) - cpus_free * has_hole
        need_mem = ahead * mem_per_job + (mem + f_mem) - mem_free * has_hole
        queue_s = np.maximum(
            np.maximum(need_cores, 0.0) * s_per_core, np.maximum(need_mem, 0.0) * s_per_mb
        )
        queue_s = np.maximum(queue_s, (ahead + 1 + f_jobs) * typical * ~has_hole)
        if n_gpus:
            need_gpus = ahead * gpus_per_job + (n_gpus + f_gpus) - gpus_free * has_hole
            queue_s = np.maximum(queue_s, np.maximum(need_gpus, 0.0) * s_per_gpu)
        live = queue_s * ~fits_now + settings.dispatch_s
        # A job that has to queue waits at least as long as this tool has queued here
        # (starvation of big jobs by backfill is invisible in one snapshot).
        bounded = np.where(fits_now, live, np.fmax(live, historical_s))
        stale = np.where(np.isnan(historical_s), settings.default_wait_s, historical_s)
        state = np.where(fresh, CANNOT_FIT * ~fits_ever, STALE)
        seconds = np.where(fresh, np.where(fits_ever, bounded, math.inf), stale)
        return cls(
            settings, job, pools, flight, historical_s, seconds, live, state, ahead,
            hole_cores, hole_mem, ~has_hole, fits_now,
        )  # fmt: skip

    def note(self, i: int) -> str:
        """Where candidate i's wait came from (for `?explain=true`)."""
        row = self.pools[i]
        hist = float(self.historical_s[i])
        state = int(self.state[i])
        if state == STALE:
            if math.isnan(hist):
                return f"no data: default {self.settings.default_wait_s:.0f} s"
            return f"historical median {hist:.0f} s"
        cpus, cpus_free = row[_COL["cpus"]], row[_COL["cpus_free"]]
        if state == CANNOT_FIT:
            why = never_fits(cpus, row[_COL["memory_mb"]], row[_COL["gpus"]], self.job)
            return f"cannot fit: {why}"
        jobs = 0 if self.flight is None else int(self.flight[i][0])
        sent = f", {jobs} just routed here" if jobs else ""
        if self.fits_now[i]:
            return (
                f"fits now (largest free slot {self.hole_cores[i]:.0f} cores, "
                f"{self.hole_mem[i]:.0f} MB{sent})"
            )
        job = self.job
        hole = f" but no hole of {job.cores} cores / {job.mem_mb:.0f} MB" if self.no_hole[i] else ""
        rate = (cpus - cpus_free) / row[_COL["typical_run_s"]] * 60
        note = (
            f"no free slot now: {self.ahead[i]:.0f} jobs queued ahead{sent}; "
            f"{cpus_free:.0f} cores free of {cpus:.0f}{hole}, "
            f"draining ~{rate:.1f} cores/min -> {self.live_s[i]:.0f} s"
        )
        if hist > self.live_s[i]:
            note += f"; historical median {hist:.0f} s"
        return note
