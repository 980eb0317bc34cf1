"""The ranking's order: freshness, TPV's order and preference, sites, every candidate once."""

import random

from broker.ranking.derived import derive
from tests.support.ranking import (
    NOW,
    TOOL,
    by_id,
    outcomes,
    rank_with,
    ranked,
    request,
    runtime,
    settings,
    usage,
    view_of,
)


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


def test_one_view_serves_each_request_with_its_own_candidates_and_coordinates():
    """A derived view keeps the candidate lists it resolved from the config; what a request
    places with its own coordinates must not leak into the next request."""
    cfg = settings(
        destinations={
            "a": {"latitude": 48.0, "longitude": 7.8, "objectstores": ["store_a"]},
            "unplaced": {},
        }
    )
    derived = derive(view_of(usage("a"), usage("unplaced")), cfg)
    data = {"1": {"object_store_id": "store_a", "size": 10e9}}

    def transfer_to_unplaced(**coords):
        req = request(ids=("a", "unplaced"), datasets=data)
        req.destinations[1].update(coords)
        return by_id(rank_with(req, cfg, derived, explain=True))["unplaced"].transfer_s

    near = transfer_to_unplaced(latitude=48.1, longitude=7.9)
    far = transfer_to_unplaced(latitude=41.1, longitude=16.9)
    assert near < far
    assert transfer_to_unplaced(latitude=48.1, longitude=7.9) == near
    # The same configured candidates in another TPV order: no metrics, so that order is kept.
    derived = derive(view_of(), settings())
    assert rank_with(request(ids=("a", "b")), settings(), derived).sorted_destinations == ["a", "b"]
    assert rank_with(request(ids=("b", "a")), settings(), derived).sorted_destinations == ["b", "a"]


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


def test_job_that_can_never_fit_goes_last():
    view = view_of(usage("a", cpus=8, free=8), usage("b"))
    req = request(ids=("a", "b", "c"), job_info={"tool_id": TOOL, "cores": 16, "mem": 1})
    response = ranked(view, req)
    assert response.sorted_destinations == ["b", "c", "a"]
    exp = by_id(response)
    assert exp["a"].state == "cannot_fit" and exp["a"].wait_s is None
    assert "16 cores" in exp["a"].reason


def test_preference_step_costs_seconds_in_tpv_order():
    view = view_of(usage("a"), usage("b"), runtime("a", run=600), runtime("b", run=630))
    req = request(ids=("b", "a"))  # TPV prefers b, a is 30 s faster
    no_step = settings(ranking={"preference_step_s": 0})
    big_step = settings(ranking={"preference_step_s": 120})
    assert ranked(view, req, no_step).sorted_destinations == ["a", "b"]
    assert ranked(view, req, big_step).sorted_destinations == ["b", "a"]
    assert by_id(ranked(view, req, big_step))["a"].preference_penalty_s == 120


def test_with_tpv_scores_equal_scores_cost_the_same_and_each_level_costs_its_step():
    view = view_of(
        usage("a"), usage("b"), usage("pool_c"),
        runtime("a", run=600), runtime("b", run=630), runtime("c", run=300),
    )  # fmt: skip
    scores = {"b": 5, "a": 5, "c": 2}  # TPV's order b, a, c; a and b are equals
    req = request(ids=("b", "a", "c"), tpv_scores=scores)
    cfg = settings(ranking={"preference_level_s": 400, "preference_step_s": 1000})
    answer = ranked(view, req, cfg)
    # a is 30 s faster than b and not charged for standing second among equals; c is 300 s
    # faster than a but one level down (400 s): last
    assert answer.sorted_destinations == ["a", "b", "c"]
    penalties = {i: e.preference_penalty_s for i, e in by_id(answer).items()}
    assert penalties == {"a": 0, "b": 0, "c": 400}
    # the same request without scores is priced per position (1000 s a step): TPV's order
    unscored = ranked(view, request(ids=("b", "a", "c")), cfg)
    assert unscored.sorted_destinations == ["b", "a", "c"]
    cheap = settings(ranking={"preference_level_s": 100})
    assert ranked(view, req, cheap).sorted_destinations == ["c", "a", "b"]


def test_score_levels_are_dense_ranks_and_a_missing_score_is_one_level_below():
    from broker.ranking.query import score_levels

    order = ("w", "x", "y", "z", "v")
    assert score_levels(order, {"w": 5, "x": 3, "y": 3, "z": 1, "v": 0.5}) == (0, 1, 1, 2, 3)
    assert score_levels(order, {"w": -1, "x": -1, "y": -4}) == (0, 0, 1, 2, 2)
    assert score_levels(order, {}) == (0, 0, 0, 0, 0)


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
