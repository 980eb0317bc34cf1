"""The wait model on its own: pools built from cluster usage, waits worked out by hand."""

import math
from dataclasses import astuple

import numpy as np
import pytest

from broker.config import RankingSettings
from broker.metrics.series import ClusterUsage, QueueCount
from broker.ranking.pool import PoolColumns, figures, pool_of
from broker.ranking.query import Job
from broker.ranking.routed import InFlight
from broker.ranking.wait import CANNOT_FIT, FRESH, STALE, Sent, wait_note, waits

NOW = 1_000_000.0
NAN = math.nan


def pool(cpus=64, free=16, largest=None, idle=0, running=8, mem=256_000, mem_free=None, gpus=0,
         gpus_free=0, t=NOW, typical_run=600.0, queued=None):  # fmt: skip
    usage = ClusterUsage(
        site="s",
        time_s=t,
        cpus=cpus,
        cpus_free=free,
        memory_mb=mem,
        memory_mb_free=mem // 2 if mem_free is None else mem_free,
        gpus=gpus,
        gpus_free=gpus_free,
        jobs_idle=idle,
        jobs_running=running,
        jobs_held=0,
        largest_free_cpus=free if largest is None else largest,
        largest_free_memory_mb=mem // 2 if mem_free is None else mem_free,
        largest_free_gpus=gpus_free,
    )
    return pool_of(usage, typical_run, queued)


def wait_of(p, cores=1, mem_mb=1024, gpus=0, hist=NAN, sent=None, **ranking):
    """The wait of one candidate; `sent`: an `InFlight` routed to its site."""
    job = Job("tool", cores, mem_mb, gpus)
    settings = RankingSettings(**ranking)
    if sent is not None:
        sent = Sent(*(np.array([v], dtype=float) for v in astuple(sent)))
    columns = PoolColumns.of([figures(p)])
    return waits(settings, columns, job, NOW, 300, np.array([hist]), sent).at(0)


def test_a_job_that_fits_waits_only_for_dispatch():
    w = wait_of(pool(free=16), cores=8, dispatch_s=30)
    assert (w.state, w.seconds, w.fits_now) == (FRESH, 30, True)


def test_stale_pool_waits_the_tools_history_or_the_default():
    old = pool(t=NOW - 301)
    assert wait_of(old).state == STALE
    assert wait_of(old, default_wait_s=300).seconds == 300
    assert wait_of(old, hist=45.0).seconds == 45.0
    assert wait_of(pool(t=NOW - 300)).state == FRESH  # exactly the staleness window: current


def test_never_reported_pool_is_stale():
    assert wait_of(pool_of(None, 600.0, None)).state == STALE


def test_too_small_pool_cannot_fit_ever():
    w = wait_of(pool(cpus=8), cores=16)
    assert (w.state, w.seconds) == (CANNOT_FIT, math.inf)
    p = pool(cpus=8)
    assert wait_note(w, p, Job("tool", 16, 1024, 0), InFlight(), RankingSettings()).endswith(
        "asks 16 cores, the pool has 8"
    )


def test_queue_ahead_is_drained_in_cores_at_the_pools_rate():
    # 48 cores in use by 8 jobs (6 each), 600 s typical run: a core frees every 12.5 s.
    # 4 jobs ahead need 24 cores, the job 8, minus the 16 free: 16 cores -> 200 s (memory:
    # half of 256 GB in use by 8 jobs, the same arithmetic gives less).
    w = wait_of(pool(free=16, idle=4), cores=8, dispatch_s=30)
    assert (w.state, w.fits_now, w.has_hole, w.ahead) == (FRESH, False, True, 4)
    assert w.seconds == pytest.approx(200 + 30)


def test_without_a_hole_each_job_ahead_costs_a_run():
    # 16 cores free in fragments of 4: the 8-core job waits for 4 jobs ahead plus itself.
    w = wait_of(pool(free=16, largest=4, idle=4), cores=8, dispatch_s=30)
    assert not w.has_hole
    assert w.seconds == pytest.approx(5 * 600 + 30)


def test_a_job_that_queues_waits_at_least_its_history_here():
    assert wait_of(pool(free=16, idle=4), cores=8, hist=5000.0).seconds == 5000.0
    # but history does not slow a job that fits now
    assert wait_of(pool(free=16), cores=8, hist=5000.0, dispatch_s=30).seconds == 30


def test_galaxy_queue_counts_only_while_current():
    current = pool(free=16, queued=QueueCount(3, NOW - 10))
    old = pool(free=16, queued=QueueCount(3, NOW - 400))
    assert wait_of(current).ahead == 3
    assert wait_of(old).fits_now


def test_jobs_in_flight_take_the_hole():
    sent = InFlight(jobs=2, cores=16, mem_mb=2048)
    w = wait_of(pool(free=16), cores=8, sent=sent)
    assert not w.fits_now and w.hole_cpus == 0


def test_gpus_need_a_gpu_hole():
    p = pool(gpus=4, gpus_free=0)
    assert not wait_of(p, gpus=1).fits_now
    assert wait_of(pool(gpus=4, gpus_free=2), gpus=1).fits_now
    assert wait_of(pool(gpus=0), gpus=1).state == CANNOT_FIT
