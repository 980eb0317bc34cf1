"""The decision log's buffer (bounded in points, the oldest dropped first, counted) and its
line protocol (`routing_decision`, as docs/metric-contract.md describes it)."""

import math

import pytest
from fastapi.testclient import TestClient

from broker.decisions.lines import DecisionLines
from broker.decisions.log import RANKED, Decision, DecisionLog
from metric_contract import measurements as mc
from metric_contract.lineprotocol import LineProtocolError
from tests.support.decisions import logging_app, points
from tests.unit.test_decision_fields import BODY, IDS


def decision(job_id, n=3, t=1000.0, **kw):
    fields = dict(
        time_s=t, job_id=job_id, tool_id="bwa", mode="enforce", chosen_by="broker", used=0,
        order=list(range(n)), ids=tuple(f"d{i}" for i in range(n)), pools=None,
        transfer_s=None, wait_s=None, estimates=None,
    )  # fmt: skip
    fields.update(kw)
    return Decision(**fields)


def test_buffer_is_bounded_in_points_and_drops_the_oldest_first():
    log = DecisionLog(max_points=10)
    for job in range(5):  # 4 points each: two fit
        log.record(RANKED, "enforce", decision(job, n=4))
    assert log.buffered == 2 and log.buffered_points == 8
    assert log.dropped == 3 and log.buffered_total == 5
    assert log.counts[RANKED, "enforce"] == 5
    assert [d.job_id for d in log.take(4)] == [3]  # at most 4 points: one decision
    assert [d.job_id for d in log.take(100)] == [4]
    assert log.buffered_points == 0


def test_a_decision_larger_than_the_buffer_is_refused_not_kept():
    log = DecisionLog(max_points=3)
    log.record(RANKED, "enforce", decision(1, n=2))
    log.record(RANKED, "enforce", decision(2, n=4))
    assert log.dropped == 1 and [d.job_id for d in log.take(100)] == [1]


def test_take_gives_at_least_one_decision_even_above_the_batch_size():
    log = DecisionLog(max_points=100)
    log.record(RANKED, "enforce", decision(1, n=30))
    assert len(log.take(5)) == 1


@pytest.fixture
def logged(tmp_path):
    """Three decisions made by the broker on the demo network: two attempts of job 41 (the
    second in shadow mode) and job 42; their lines parsed back."""
    app = logging_app(tmp_path)
    with TestClient(app) as c:
        # first: an explanation is not recorded, so the first decision sees the same state
        explained = c.post("/process_data?explain=true", json=BODY).json()["explanation"]
        answers = [
            c.post("/process_data", json={**BODY, "job_id": 41}).json(),
            c.post("/process_data", json={**BODY, "job_id": 42}).json(),
            c.post(
                "/process_data",
                json={**BODY, "job_id": 41, "mode": "shadow", "fallback_order": IDS[::-1]},
            ).json(),
        ]
        batch = app.state.decisions.take(10**9)
    lines = DecisionLines()
    return answers, explained, batch, [points(lines.format(d)) for d in batch]


def test_one_point_per_candidate_with_the_contract_names(logged):
    answers, _, batch, decisions = logged
    for answer, pts in zip(answers, decisions, strict=True):
        assert len(pts) == len(IDS)
        assert {p.measurement for p in pts} == {mc.DECISIONS}
        assert {p.tags[mc.DESTINATION_ID] for p in pts} == set(IDS)
        for p in pts:
            assert set(p.tags) == set(mc.DECISION_TAGS)
            assert set(p.fields) <= set(mc.DECISION_FIELDS)
            assert p.tags[mc.TOOL_ID] == BODY["job_info"]["tool_id"]
        by_rank = sorted(pts, key=lambda p: p.fields[mc.BROKER_RANK])
        assert [p.tags[mc.DESTINATION_ID] for p in by_rank] == answer["sorted_destinations"]
        assert len({p.time_ns for p in pts}) == 1  # candidates share the decision's time
        assert len({p.fields[mc.DECISION] for p in pts}) == 1
        assert sum(p.fields[mc.USED] is True for p in pts) == 1
    ids = {pts[0].fields[mc.DECISION] for pts in decisions}
    assert len(ids) == 3  # unique per decision
    times = [pts[0].time_ns for pts in decisions]
    assert times == sorted(set(times))  # strictly increasing


def test_attempts_count_the_decisions_of_a_job_id(logged):
    _, _, _, decisions = logged
    assert [(d[0].fields[mc.JOB_ID], d[0].fields[mc.ATTEMPT]) for d in decisions] == [
        (41, 1),
        (42, 1),
        (41, 2),
    ]


def test_used_and_chosen_by_follow_the_mode(logged):
    answers, _, _, decisions = logged
    enforce, shadow = decisions[0], decisions[2]
    used = next(p for p in enforce if p.fields[mc.USED])
    assert used.tags[mc.DESTINATION_ID] == answers[0]["sorted_destinations"][0]
    assert {p.tags[mc.CHOSEN_BY] for p in enforce} == {"broker"}
    assert {p.tags[mc.MODE] for p in enforce} == {"enforce"}
    used = next(p for p in shadow if p.fields[mc.USED])
    assert used.tags[mc.DESTINATION_ID] == IDS[-1]  # the fallback order's first
    assert {p.tags[mc.CHOSEN_BY] for p in shadow} == {"fallback"}
    assert {p.tags[mc.MODE] for p in shadow} == {"shadow"}


def test_predictions_are_the_ones_the_explanation_gives(logged):
    _, explained, _, decisions = logged
    first = {p.tags[mc.DESTINATION_ID]: p.fields for p in decisions[0]}
    for row in explained["destinations"]:
        f = first[row["id"]]
        assert f[mc.TRANSFER_S] == pytest.approx(row["transfer_s"], abs=0.551)  # whole s
        assert f[mc.RUN_S] == pytest.approx(row["run_s"], abs=0.051)
        assert f[mc.P_SUCCESS] == pytest.approx(row["p_success"], abs=5e-5)
        if row["wait_s"] is None:
            assert mc.WAIT_S not in f  # can never fit there
        else:
            assert f[mc.WAIT_S] == pytest.approx(row["wait_s"], abs=0.551)
        age = row["metric_ages"]["cluster_usage_s"]
        if age is None:
            assert mc.METRIC_AGE_S not in f
        else:
            assert isinstance(f[mc.METRIC_AGE_S], float)
            assert abs(f[mc.METRIC_AGE_S] - age) <= 0.551  # whole seconds


def test_a_site_without_metrics_and_a_job_that_cannot_fit_omit_age_and_wait():
    class Pool:
        def __init__(self, t):
            self.time_s = t

    class Est:
        def __init__(self, v):
            self.value = v

    class ToolEstimate:
        run, success = Est(100.0), Est(0.9)

    est = [ToolEstimate()] * 3
    pools = [Pool(990.0), Pool(-math.inf), Pool(995.5)]
    lines = DecisionLines()
    for waits in ([30.0, 40.0, 50.0], [30.0, math.inf, 50.0]):  # the template, and line by line
        d = decision(1, pools=pools, transfer_s=[1.0, 2.0, 3.0], wait_s=waits, estimates=est,
                     order=[2, 0, 1], used=2)  # fmt: skip
        pts = {p.tags[mc.DESTINATION_ID]: p.fields for p in points(lines.format(d))}
        # whole seconds, rounded (4.5 s -> 5)
        assert pts["d0"][mc.METRIC_AGE_S] == 10.0 and pts["d2"][mc.METRIC_AGE_S] == 5.0
        assert mc.METRIC_AGE_S not in pts["d1"]
        assert (mc.WAIT_S in pts["d1"]) is (waits[1] != math.inf)
        assert [pts[f"d{i}"][mc.BROKER_RANK] for i in range(3)] == [1, 2, 0]
        assert [pts[f"d{i}"][mc.USED] for i in range(3)] == [False, False, True]
        assert pts["d2"][mc.TRANSFER_S] == 3.0 and pts["d0"][mc.WAIT_S] == 30.0


@pytest.mark.parametrize("tool", ["tool with, odd=chars %s %d", "100%"])
def test_ids_with_spaces_commas_and_percent_signs_round_trip(tool):
    lines = DecisionLines()
    d = decision(5, tool_id=tool, ids=("a b", "c,d=e"), order=[1, 0])
    pts = points(lines.format(d))
    assert {p.tags[mc.TOOL_ID] for p in pts} == {tool}
    assert {p.tags[mc.DESTINATION_ID] for p in pts} == {"a b", "c,d=e"}


def test_a_tool_id_line_protocol_cannot_carry_is_refused():
    with pytest.raises(LineProtocolError):
        DecisionLines().format(decision(5, tool_id="two\nlines"))
