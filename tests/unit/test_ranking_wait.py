"""The wait term, through the ranking: free slots, queues, GPUs, memory units."""

from broker.ranking.models import JobInfo
from metric_contract.lineprotocol import format_point
from metric_contract.units import MB_PER_GB
from tests.support.ranking import (
    NOW,
    NS,
    TOOL,
    by_id,
    queued,
    ranked,
    request,
    runtime,
    settings,
    usage,
    view_of,
)


def test_memory_is_converted_from_tpv_gb_to_htcondor_mb_once():
    assert JobInfo(mem=4).mem_mb == 4 * MB_PER_GB == 4096
    # 4 GB = 4096 MB does not fit a 4000 MB slot but fits a 4096 MB one.
    view = view_of(
        usage("a", largest_mem=4000, mem_free=4000, idle=0),
        usage("b", largest_mem=4096, mem_free=4096, idle=0),
    )
    req = request(ids=("a", "b"), job_info={"tool_id": TOOL, "mem": 4, "cores": 1})
    exp = by_id(ranked(view, req))
    assert exp["a"].terms["wait"].startswith("no free slot")
    assert exp["b"].terms["wait"].startswith("fits now")


def test_full_site_waits_for_the_jobs_ahead():
    view = view_of(
        usage("a", free=0, largest_cpus=0, idle=40, running=60),
        usage("b", free=16, largest_cpus=16),
        runtime("a", run=600),
        runtime("b", run=600),
    )
    exp = by_id(ranked(view, request(ids=("a", "b"))))
    assert exp["b"].wait_s == settings().ranking.dispatch_s
    assert exp["a"].wait_s > exp["b"].wait_s * 5
    assert "40 jobs queued ahead" in exp["a"].terms["wait"]


def test_galaxy_queue_counts_only_while_current():
    cfg = settings()
    full = dict(free=0, largest_cpus=0, idle=0, running=10)
    now_queue = view_of(usage("a", **full), queued("a", 50))
    old_queue = view_of(usage("a", **full), queued("a", 50, t=NOW - 3600))
    req = request(ids=("a",))
    w_now = by_id(ranked(now_queue, req, cfg))["a"].wait_s
    w_old = by_id(ranked(old_queue, req, cfg))["a"].wait_s
    assert w_now > w_old  # an old row is a drained queue, not 50 jobs


def test_gpus_must_fit_too():
    view = view_of(usage("a", gpus=4, gpus_free=0), usage("b", gpus=4, gpus_free=2))
    req = request(ids=("a", "b"), job_info={"tool_id": TOOL, "cores": 1, "mem": 1, "gpus": 1})
    exp = by_id(ranked(view, req))
    assert exp["a"].terms["wait"].startswith("no free slot")
    assert exp["b"].terms["wait"].startswith("fits now")


def test_queue_row_older_than_the_last_gxadmin_run_is_a_drained_queue():
    full = dict(free=0, largest_cpus=0, idle=0, running=10)
    running_b = format_point(
        "queue_by_destination", {"destination_id": "b", "state": "running"}, {"count": 3}, NOW * NS
    )
    # a's queued row is from the previous run (60 s ago): the newest run had no row for it
    view = view_of(usage("a", **full), queued("a", 50, t=NOW - 60), running_b)
    assert view.queue_row("a") is None
    same_run = view_of(usage("a", **full), queued("a", 50, t=NOW), running_b)
    assert same_run.queue_row("a").count == 50
    req = request(ids=("a",))
    assert by_id(ranked(view, req))["a"].wait_s < by_id(ranked(same_run, req))["a"].wait_s


def test_largest_free_gpus_decides_gpu_fit_when_reported():
    pool = usage("a", gpus=8, gpus_free=4, largest_gpus=0)
    exp = by_id(ranked(view_of(pool), request(ids=("a",), job_info={"cores": 1, "gpus": 1})))
    assert exp["a"].terms["wait"].startswith("no free slot")


def test_wait_counts_cores_not_jobs():
    # Both pools have a 4-core hole and 10 jobs queued; at a they are 1-core jobs, at b
    # whole-node 32-core ones: a drains its queue ~30 times sooner.
    small = usage("a", cpus=320, free=4, largest_cpus=4, idle=10, running=316)
    big = usage("b", cpus=320, free=4, largest_cpus=4, idle=10, running=10)
    req = request(ids=("a", "b"), job_info={"tool_id": TOOL, "cores": 4, "mem": 1})
    exp = by_id(ranked(view_of(small, big, runtime("a"), runtime("b")), req))
    assert exp["a"].wait_s < exp["b"].wait_s / 5
    assert "10 jobs queued ahead" in exp["b"].terms["wait"]


def test_a_job_bigger_than_every_hole_waits_for_the_backfilling_queue():
    # Plenty of free cores in total, but in fragments smaller than the job
    fragmented = usage("a", cpus=320, free=60, largest_cpus=8, idle=6, running=250)
    req = request(ids=("a",), job_info={"tool_id": TOOL, "cores": 16, "mem": 1})
    exp = by_id(ranked(view_of(fragmented, runtime("a", run=600)), req))
    assert "no hole of 16 cores" in exp["a"].terms["wait"]
    assert exp["a"].wait_s >= 600 * (1 + 6)
