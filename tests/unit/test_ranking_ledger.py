"""Jobs the broker has just routed, through the ranking: they take the slot they were sent to."""

from broker.ranking.derived import derive
from broker.ranking.routed import RoutedLedger
from tests.support.ranking import (
    NOW,
    TOOL,
    by_id,
    rank_with,
    request,
    runtime,
    settings,
    usage,
    view_of,
)


def test_routed_jobs_take_the_free_slot_until_the_site_reports_them():

    cfg = settings()
    ledger = RoutedLedger(grace_s=60, horizon_s=300)
    pools = (usage("a", free=16, largest_cpus=16), usage("b", free=16, largest_cpus=16))
    runs = (runtime("a", run=600), runtime("b", run=660))  # a slightly faster
    req = request(ids=("a", "b"), job_info={"tool_id": TOOL, "cores": 16, "mem": 1})
    view = view_of(*pools, *runs)
    first = rank_with(req, cfg, derive(view, cfg), ledger)
    second = rank_with(req, cfg, derive(view, cfg), ledger, explain=True)
    assert first.sorted_destinations[0] == "a"
    assert second.sorted_destinations[0] == "b"  # a's 16 cores are already taken
    assert "1 just routed here" in by_id(second)["a"].terms["wait"]
    # a reports again after the job should have reached its queue: the ledger forgets it
    later = view_of(
        usage("a", t=NOW + 120, free=16, largest_cpus=16), usage("b", t=NOW + 120), *runs
    )
    assert ledger.in_flight("a", reported_at_s=NOW + 120, now_s=NOW + 120).jobs == 0
    assert rank_with(req, cfg, derive(later, cfg)).sorted_destinations[0] == "a"


def test_gpu_jobs_in_flight_do_not_take_the_slot_of_a_cpu_job():

    cfg = settings()
    ledger = RoutedLedger(grace_s=60, horizon_s=300)
    # 2 GPUs free at a; the broker has just sent 3 GPU jobs there (more than it has free)
    for _ in range(3):
        ledger.add("a", NOW, 0.0, cores=1, mem_mb=1024, gpus=1)
    pool = usage("a", gpus=4, gpus_free=2, largest_gpus=2)
    view = view_of(pool, runtime("a"))
    cpu_job = request(ids=("a",), job_info={"tool_id": TOOL, "cores": 1, "mem": 1})
    exp = by_id(rank_with(cpu_job, cfg, derive(view, cfg), ledger, explain=True))
    assert exp["a"].terms["wait"].startswith("fits now")
    gpu_job = request(ids=("a",), job_info={"tool_id": TOOL, "cores": 1, "gpus": 1})
    exp = by_id(rank_with(gpu_job, cfg, derive(view, cfg), ledger, explain=True))
    assert exp["a"].terms["wait"].startswith("no free slot")
