"""The ranking model, on views built from line protocol exactly as the sources build them."""

import math
import random

import pytest

from broker.config import Settings
from broker.metrics.view import MetricsView
from broker.ranking.models import JobInfo, RankRequest
from broker.ranking.rank import prepare, rank
from broker.ranking.transfer import bandwidth_mb_s, distance_km
from metric_contract.lineprotocol import format_point
from metric_contract.units import MB_PER_GB

NOW = 1_800_000_000
NS = 1_000_000_000
TOOL = "toolshed/repos/iuc/bwa/bwa_mem/1.0"


def usage(site, t=NOW, cpus=64, free=32, mem_mb=256_000, mem_free=128_000, idle=0, running=8, **kw):
    fields = {
        "cpus": cpus,
        "cpus_free": free,
        "memory_mb": mem_mb,
        "memory_mb_free": mem_free,
        "gpus": kw.pop("gpus", 0),
        "gpus_free": kw.pop("gpus_free", 0),
        "jobs_idle": idle,
        "jobs_running": running,
        "jobs_held": 0,
        "largest_free_cpus": kw.pop("largest_cpus", free),
        "largest_free_memory_mb": kw.pop("largest_mem", mem_free),
    }
    if "largest_gpus" in kw:
        fields["largest_free_gpus"] = kw.pop("largest_gpus")
    return format_point("htcondor_cluster_usage", {"site": site}, fields, t * NS)


def runtime(dest, tool=TOOL, run=600, queue=60, count=50, t=NOW - 3600):
    tags = {"destination_id": dest, "tool_id": tool}
    fields = {"count": count, "median_run": run, "median_queue": queue}
    return format_point("destination-queue-run-time", tags, fields, t * NS)


def outcomes(dest, ok, error, tool=TOOL, t=NOW - 600):
    tags = {"destination_id": dest, "tool_id": tool}
    return format_point("job_outcomes", tags, {"ok": ok, "error": error}, t * NS)


def queued(dest, count, t=NOW - 10):
    tags = {"destination_id": dest, "state": "queued"}
    return format_point("queue_by_destination", tags, {"count": count}, t * NS)


def view_of(*lines):
    from metric_contract.lineprotocol import parse_lines

    return MetricsView.from_points(parse_lines(lines), source="test", frozen=True)


def settings(**extra):
    base = {
        "metrics": {"source": "snapshot", "snapshot": "unused.lp", "staleness_s": 300},
        "destinations": {
            "a": {"latitude": 48.0, "longitude": 7.8, "objectstores": ["store_a"]},
            "b": {"latitude": 51.0, "longitude": 3.7},
            "c": {"latitude": 41.1, "longitude": 16.9, "site": "pool_c"},
        },
        "objectstores": {"store_a": {"latitude": 48.0, "longitude": 7.8}},
    }
    base.update(extra)
    return Settings.model_validate(base)


def request(ids=("a", "b", "c"), **kw):
    body = {
        "destinations": [{"id": i} for i in ids],
        "job_info": {"tool_id": TOOL, "cores": 1, "mem": 1},
    }
    body.update(kw)
    return RankRequest.model_validate(body)


def ranked(view, req, cfg=None, explain=True):
    cfg = cfg or settings()
    return rank(req, cfg, prepare(view, cfg), explain=explain)


def by_id(response):
    return {d.id: d for d in response.explanation.destinations}


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


def test_no_metrics_at_all_keeps_tpv_order():
    req = request(ids=("c", "a", "b"))
    response = ranked(view_of(), req)
    assert response.sorted_destinations == ["c", "a", "b"]
    assert response.explanation.degraded
    assert "TPV's order" in response.explanation.summary


def test_preference_field_is_tpv_order_when_given():
    req = request(ids=("a", "b", "c"), preference=["b", "zzz", "c"])
    assert req.tpv_order() == ["b", "c", "a"]
    assert ranked(view_of(), req).sorted_destinations == ["b", "c", "a"]


def test_stale_destinations_go_after_fresh_ones_in_tpv_order():
    view = view_of(
        usage("a", t=NOW - 3600),  # an hour old: stale
        usage("b", t=NOW),
        usage("pool_c", t=NOW - 900),  # stale too
        runtime("a", run=10),  # the stale one would be much faster
        runtime("b", run=5000),
    )
    response = ranked(view, request(ids=("c", "a", "b")))
    assert response.sorted_destinations == ["b", "c", "a"]
    exp = by_id(response)
    assert exp["b"].state == "fresh" and exp["a"].state == "stale" and exp["c"].state == "stale"
    assert exp["a"].expected_s is None
    assert "stale" in exp["a"].reason and exp["a"].metric_ages.cluster_usage_s == 3600


def test_destination_maps_to_its_site():
    view = view_of(usage("pool_c"))
    exp = by_id(ranked(view, request()))
    assert exp["c"].state == "fresh" and exp["c"].site == "pool_c"
    assert exp["a"].state == "stale"


def test_data_locality_wins_when_everything_else_is_equal():
    view = view_of(usage("a"), usage("b"), usage("pool_c"))
    req = request(datasets={"1": {"object_store_id": "store_a", "size": 50e9}})
    response = ranked(view, req)
    exp = by_id(response)
    assert response.sorted_destinations[0] == "a"
    assert exp["a"].transfer_s == 0
    # 50 GB over ~410 km (Freiburg -> Ghent) at the distance-based bandwidth
    km = distance_km((48.0, 7.8), (51.0, 3.7))
    assert 350 < km < 500
    expected = 50e9 / 1e6 / bandwidth_mb_s(settings().ranking.bandwidth, km)
    assert exp["b"].transfer_s == pytest.approx(expected, rel=1e-3)
    assert exp["c"].transfer_s > exp["b"].transfer_s  # Bari is farther than Ghent


def test_measured_bandwidth_matrix_overrides_distance():
    cfg = settings(ranking={"bandwidth": {"matrix": {"store_a": {"c": 5000.0}}}})
    view = view_of(usage("a"), usage("b"), usage("pool_c"))
    req = request(datasets={"1": {"object_store_id": "store_a", "size": 5e9}})
    assert by_id(ranked(view, req, cfg))["c"].transfer_s == pytest.approx(1.0)


def test_one_view_serves_each_request_with_its_own_candidates_and_coordinates():
    """A prepared view keeps the candidate lists it resolved from the config; what a request
    places with its own coordinates must not leak into the next request."""
    cfg = settings(
        destinations={
            "a": {"latitude": 48.0, "longitude": 7.8, "objectstores": ["store_a"]},
            "unplaced": {},
        }
    )
    prepared = prepare(view_of(usage("a"), usage("unplaced")), cfg)
    data = {"1": {"object_store_id": "store_a", "size": 10e9}}

    def transfer_to_unplaced(**coords):
        req = request(ids=("a", "unplaced"), datasets=data)
        req.destinations[1].update(coords)
        return by_id(rank(req, cfg, prepared, explain=True))["unplaced"].transfer_s

    near = transfer_to_unplaced(latitude=48.1, longitude=7.9)
    far = transfer_to_unplaced(latitude=41.1, longitude=16.9)
    assert near < far
    assert transfer_to_unplaced(latitude=48.1, longitude=7.9) == near
    # The same configured candidates in another TPV order: no metrics, so that order is kept.
    prepared = prepare(view_of(), settings())
    assert rank(request(ids=("a", "b")), settings(), prepared).sorted_destinations == ["a", "b"]
    assert rank(request(ids=("b", "a")), settings(), prepared).sorted_destinations == ["b", "a"]


def test_nan_or_infinite_metrics_count_as_missing_not_as_a_free_pool():
    """Line protocol admits nan/inf; compared as numbers they would order pools arbitrarily."""
    a = usage("a").replace("cpus=64i", "cpus=nan").replace("cpus_free=32i", "cpus_free=nan")
    b = usage("b").replace("cpus_free=32i", "cpus_free=inf")
    assert "nan" in a and "inf" in b
    view = view_of(a, b, usage("pool_c"))
    assert view.cluster["a"].cpus == 0.0 and view.cluster["b"].cpus_free == 0.0
    response = ranked(view, request())
    exp = by_id(response)
    assert exp["a"].state == "cannot_fit" and response.sorted_destinations[-1] == "a"
    assert response.sorted_destinations[0] == "c"  # b's free cores are unknown, c has 32


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


def test_job_that_can_never_fit_goes_last():
    view = view_of(usage("a", cpus=8, free=8), usage("b"))
    req = request(ids=("a", "b", "c"), job_info={"tool_id": TOOL, "cores": 16, "mem": 1})
    response = ranked(view, req)
    assert response.sorted_destinations == ["b", "c", "a"]
    exp = by_id(response)
    assert exp["a"].state == "cannot_fit" and exp["a"].wait_s is None
    assert "16 cores" in exp["a"].reason


def test_gpus_must_fit_too():
    view = view_of(usage("a", gpus=4, gpus_free=0), usage("b", gpus=4, gpus_free=2))
    req = request(ids=("a", "b"), job_info={"tool_id": TOOL, "cores": 1, "mem": 1, "gpus": 1})
    exp = by_id(ranked(view, req))
    assert exp["a"].terms["wait"].startswith("no free slot")
    assert exp["b"].terms["wait"].startswith("fits now")


def test_a_destination_that_fails_the_tool_loses_despite_being_faster():
    view = view_of(
        usage("a"),
        usage("b"),
        runtime("a", run=1000, count=200),
        runtime("b", run=1200, count=200),
        outcomes("a", ok=110, error=90),
        outcomes("b", ok=198, error=2),
    )
    response = ranked(view, request(ids=("a", "b")))
    exp = by_id(response)
    assert response.sorted_destinations == ["b", "a"]
    assert exp["a"].p_success < 0.6 < 0.95 < exp["b"].p_success


def test_three_lucky_runs_do_not_beat_a_long_record():
    view = view_of(
        usage("a"),
        usage("b"),
        outcomes("a", ok=3, error=0),
        outcomes("b", ok=970, error=30),
        outcomes("b", ok=500, error=500, tool="other"),  # b is bad for other tools
    )
    exp = by_id(ranked(view, request(ids=("a", "b"))))
    assert exp["a"].p_success < 1.0  # shrunk, not 3/3
    assert exp["b"].p_success > 0.95  # its own long record dominates its poor overall rate


def test_run_time_falls_back_to_elsewhere_scaled_by_speed():
    other = "toolshed/other/1.0"
    view = view_of(
        usage("a"),
        usage("b"),
        runtime("a", run=1000, count=100),
        runtime("a", tool=other, run=100, count=100),
        runtime("b", tool=other, run=200, count=100),  # b runs `other` twice as slow
    )
    exp = by_id(ranked(view, request(ids=("a", "b"))))
    assert "no runs here" in exp["b"].terms["run"]
    # b's speed: log-ratio to the reference (geometric mean 141 s), shrunk by min_runs=5 runs
    speed_b = math.exp(100 / 105 * math.log(200 / math.sqrt(100 * 200)))
    assert exp["b"].run_s == pytest.approx(1000 * speed_b, rel=1e-3)
    assert exp["a"].run_s < 1000  # a's own runs, shrunk slightly towards its faster speed


def test_unknown_tool_uses_the_default_run_time():
    view = view_of(usage("a"))
    req = request(ids=("a",), job_info={"tool_id": "never/seen", "cores": 1})
    exp = by_id(ranked(view, req))
    assert exp["a"].run_s == settings().ranking.default_run_s
    assert "default" in exp["a"].terms["run"]


def test_preference_step_costs_seconds_in_tpv_order():
    view = view_of(usage("a"), usage("b"), runtime("a", run=600), runtime("b", run=630))
    req = request(ids=("b", "a"))  # TPV prefers b, a is 30 s faster
    no_step = settings(ranking={"preference_step_s": 0})
    big_step = settings(ranking={"preference_step_s": 120})
    assert ranked(view, req, no_step).sorted_destinations == ["a", "b"]
    assert ranked(view, req, big_step).sorted_destinations == ["b", "a"]
    assert by_id(ranked(view, req, big_step))["a"].preference_penalty_s == 120


def test_ties_keep_tpv_order():
    view = view_of(usage("a"), usage("b"))
    assert ranked(view, request(ids=("b", "a"))).sorted_destinations == ["b", "a"]
    assert ranked(view, request(ids=("a", "b"))).sorted_destinations == ["a", "b"]


def test_answer_is_always_a_permutation_of_the_candidates():
    rng = random.Random(7)
    sites = [f"s{i}" for i in range(8)]
    for _ in range(200):
        lines = []
        for s in sites:
            if rng.random() < 0.7:
                lines.append(
                    usage(
                        s,
                        t=NOW - rng.choice([0, 100, 1000]),
                        free=rng.randint(0, 64),
                        largest_cpus=rng.randint(0, 64),
                        idle=rng.randint(0, 50),
                    )
                )
            if rng.random() < 0.5:
                lines.append(runtime(s, run=rng.randint(1, 5000), count=rng.randint(1, 100)))
            if rng.random() < 0.5:
                lines.append(outcomes(s, ok=rng.randint(0, 50), error=rng.randint(0, 50)))
        ids = rng.sample(sites + ["unknown_x", "unknown_y"], k=rng.randint(1, 10))
        req = request(
            ids=ids,
            job_info={"tool_id": TOOL, "cores": rng.randint(0, 80), "mem": rng.uniform(0, 300)},
            datasets={
                "1": {"object_store_id": rng.choice(["store_a", "nowhere", None]), "size": 1e9}
            },
        )
        response = ranked(view_of(*lines), req, explain=rng.random() < 0.5)
        assert sorted(response.sorted_destinations) == sorted(ids)


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


def test_routed_jobs_take_the_free_slot_until_the_site_reports_them():
    from broker.ranking.routed import RoutedLedger

    cfg = settings()
    ledger = RoutedLedger(grace_s=60, horizon_s=300)
    pools = (usage("a", free=16, largest_cpus=16), usage("b", free=16, largest_cpus=16))
    runs = (runtime("a", run=600), runtime("b", run=660))  # a slightly faster
    req = request(ids=("a", "b"), job_info={"tool_id": TOOL, "cores": 16, "mem": 1})
    view = view_of(*pools, *runs)
    first = rank(req, cfg, prepare(view, cfg), routed=ledger)
    second = rank(req, cfg, prepare(view, cfg), routed=ledger, explain=True)
    assert first.sorted_destinations[0] == "a"
    assert second.sorted_destinations[0] == "b"  # a's 16 cores are already taken
    assert "1 just routed here" in by_id(second)["a"].terms["wait"]
    # a reports again after the job should have reached its queue: the ledger forgets it
    later = view_of(
        usage("a", t=NOW + 120, free=16, largest_cpus=16), usage("b", t=NOW + 120), *runs
    )
    assert ledger.in_flight("a", reported_at_s=NOW + 120, now_s=NOW + 120).jobs == 0
    assert rank(req, cfg, prepare(later, cfg)).sorted_destinations[0] == "a"


def test_gpu_jobs_in_flight_do_not_take_the_slot_of_a_cpu_job():
    from broker.ranking.routed import RoutedLedger

    cfg = settings()
    ledger = RoutedLedger(grace_s=60, horizon_s=300)
    # 2 GPUs free at a; the broker has just sent 3 GPU jobs there (more than it has free)
    for _ in range(3):
        ledger.add("a", NOW, 0.0, cores=1, mem_mb=1024, gpus=1)
    pool = usage("a", gpus=4, gpus_free=2, largest_gpus=2)
    view = view_of(pool, runtime("a"))
    cpu_job = request(ids=("a",), job_info={"tool_id": TOOL, "cores": 1, "mem": 1})
    exp = by_id(rank(cpu_job, cfg, prepare(view, cfg), routed=ledger, explain=True))
    assert exp["a"].terms["wait"].startswith("fits now")
    gpu_job = request(ids=("a",), job_info={"tool_id": TOOL, "cores": 1, "gpus": 1})
    exp = by_id(rank(gpu_job, cfg, prepare(view, cfg), routed=ledger, explain=True))
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


# --- success model (issue 8) ---


def test_a_destination_failing_40_percent_loses_to_a_slightly_slower_one_with_none():
    view = view_of(
        usage("a"),
        usage("b"),
        runtime("a", run=1000, count=200),
        runtime("b", run=1100, count=200),  # 10% slower
        outcomes("a", ok=120, error=80),  # 40% failures
        outcomes("b", ok=200, error=0),
    )
    response = ranked(view, request(ids=("a", "b")))
    exp = by_id(response)
    assert response.sorted_destinations == ["b", "a"]
    assert exp["a"].p_success == pytest.approx(0.6, abs=0.05)  # its long record, barely shrunk
    assert 0.97 < exp["b"].p_success < 1.0  # never certain
    assert exp["a"].expected_s > exp["b"].expected_s


def test_two_runs_of_history_are_not_trusted_as_if_they_were_200():
    other = "toolshed/other/1.0"

    def view_with(ok_a):
        return view_of(
            usage("a"),
            usage("b"),
            runtime("a", run=970, count=200),  # a is 3% faster
            runtime("b", run=1000, count=200),
            outcomes("a", ok=ok_a, error=0),
            outcomes("b", ok=196, error=4),
            outcomes("a", ok=600, error=400, tool=other),  # a is unreliable for other tools
            outcomes("b", ok=980, error=20, tool=other),
        )

    two, many = (ranked(view_with(n), request(ids=("a", "b"))) for n in (2, 200))
    p_two, p_many = by_id(two)["a"].p_success, by_id(many)["a"].p_success
    assert p_two < 0.95 < 0.99 < p_many  # 2/2 stays near what a's record elsewhere suggests
    assert two.sorted_destinations == ["b", "a"]
    assert many.sorted_destinations == ["a", "b"]


def test_a_destination_without_history_borrows_from_shared_features():
    feats = {
        "a": {"features": {"cvmfs": "no", "os": "rocky9"}},
        "b": {"features": {"cvmfs": "yes", "os": "rocky9"}},
        "c": {"features": {"cvmfs": "no", "os": "rocky9"}},  # no runs of the tool
        "d": {"features": {"cvmfs": "yes", "os": "rocky9"}},  # no runs of the tool
        "e": {"features": {"cvmfs": "yes", "os": "rocky9"}},
        "f": {"features": {"cvmfs": "no", "os": "rocky9"}},
    }
    cfg = settings(destinations=feats)
    view = view_of(
        *(usage(x) for x in "abcdef"),
        outcomes("a", ok=55, error=45),
        outcomes("f", ok=60, error=40),
        outcomes("b", ok=99, error=1),
        outcomes("e", ok=98, error=2),
    )
    exp = by_id(ranked(view, request(ids=("c", "d")), cfg))
    assert exp["c"].p_success < 0.8 < 0.95 < exp["d"].p_success
    assert "cvmfs=no" in exp["c"].terms["success"]
    assert "no outcomes here" in exp["c"].terms["success"]


def test_success_models_are_fitted_in_prepare_and_reused_while_outcomes_are_unchanged(
    monkeypatch,
):
    from broker.success.model import SuccessModel

    lines = [usage("a"), usage("b"), outcomes("a", ok=50, error=5), outcomes("b", ok=9, error=1)]
    first = prepare(view_of(*lines), settings())
    again = prepare(view_of(*lines), settings())
    assert again.history.success_models[TOOL] is first.history.success_models[TOOL]
    changed = prepare(view_of(*lines[:-1], outcomes("b", ok=9, error=2)), settings())
    assert changed.history.success_models[TOOL] is not first.history.success_models[TOOL]

    def no_fitting(*args, **kwargs):
        raise AssertionError("fitted on the request path")

    monkeypatch.setattr(SuccessModel, "fit", no_fitting)
    response = rank(request(ids=("a", "b", "zzz")), settings(), changed, explain=True)
    assert sorted(response.sorted_destinations) == ["a", "b", "zzz"]
