"""The run-time and success terms, through the ranking: history, shrinkage, features."""

import math

import pytest

from broker.ranking.derived import derive
from tests.support.ranking import (
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


def test_success_models_are_fitted_in_derive_and_reused_while_outcomes_are_unchanged(
    monkeypatch,
):
    from broker.success.model import SuccessModel

    lines = [usage("a"), usage("b"), outcomes("a", ok=50, error=5), outcomes("b", ok=9, error=1)]
    first = derive(view_of(*lines), settings())
    again = derive(view_of(*lines), settings())
    assert again.history.success_models[TOOL] is first.history.success_models[TOOL]
    changed = derive(view_of(*lines[:-1], outcomes("b", ok=9, error=2)), settings())
    assert changed.history.success_models[TOOL] is not first.history.success_models[TOOL]

    def no_fitting(*args, **kwargs):
        raise AssertionError("fitted on the request path")

    monkeypatch.setattr(SuccessModel, "fit", no_fitting)
    response = rank_with(request(ids=("a", "b", "zzz")), settings(), changed, explain=True)
    assert sorted(response.sorted_destinations) == ["a", "b", "zzz"]
