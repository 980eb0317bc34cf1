"""The decision log's buffer (bounded in points, the oldest dropped first, counted) and its
line protocol (`routing_decision`, as docs/metric-contract.md describes it)."""

import math

import pytest
from fastapi.testclient import TestClient

from broker.decisions.lines import DecisionLines
from broker.decisions.log import RANKED, Decision, DecisionLog
from metric_contract import measurements as mc
from metric_contract.decision_points import candidates_of
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


def test_one_point_per_decision_with_the_contract_names(logged):
    answers, _, batch, decisions = logged
    for answer, pts in zip(answers, decisions, strict=True):
        assert len(pts) == 1
        (p,) = pts
        assert p.measurement == mc.DECISIONS
        assert set(p.tags) == set(mc.DECISION_TAGS)
        assert set(p.fields) <= set(mc.DECISION_FIELDS)
        assert p.tags[mc.TOOL_ID] == BODY["job_info"]["tool_id"]
        candidates = candidates_of(p.fields)
        assert [c.destination_id for c in candidates] == IDS  # TPV's order
        by_rank = sorted(candidates, key=lambda c: c.broker_rank)
        assert [c.destination_id for c in by_rank] == answer["sorted_destinations"]
        assert p.fields[mc.BROKER_CHOICE] == answer["sorted_destinations"][0]
        used = next(c for c in candidates if c.destination_id == p.tags[mc.DESTINATION_ID])
        assert p.fields[mc.BROKER_RANK] == used.broker_rank
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
    (enforce,), (shadow,) = decisions[0], decisions[2]
    assert enforce.tags[mc.DESTINATION_ID] == answers[0]["sorted_destinations"][0]
    assert enforce.fields[mc.BROKER_RANK] == 0
    assert enforce.tags[mc.CHOSEN_BY] == "broker" and enforce.tags[mc.MODE] == "enforce"
    assert shadow.tags[mc.DESTINATION_ID] == IDS[-1]  # the fallback order's first
    assert shadow.tags[mc.CHOSEN_BY] == "fallback" and shadow.tags[mc.MODE] == "shadow"
    assert shadow.fields[mc.BROKER_CHOICE] == answers[2]["sorted_destinations"][0]


def test_predictions_are_the_ones_the_explanation_gives(logged):
    _, explained, _, decisions = logged
    (point,) = decisions[0]
    first = {c.destination_id: c for c in candidates_of(point.fields, point.time_ns)}
    for row in explained["destinations"]:
        c = first[row["id"]]
        assert c.transfer_s == pytest.approx(row["transfer_s"], abs=0.551)  # whole s
        assert c.run_s == pytest.approx(row["run_s"], abs=0.551)  # whole seconds
        assert c.p_success == pytest.approx(row["p_success"], abs=1e-4)  # 4 decimals
        if row["wait_s"] is None:
            assert math.isnan(c.wait_s)  # can never fit there
        else:
            assert c.wait_s == pytest.approx(row["wait_s"], abs=0.551)
        age = row["metric_ages"]["cluster_usage_s"]
        if age is None:
            assert math.isnan(c.metric_age_s)
        else:
            assert age - 0.001 <= c.metric_age_s < age + 1.001  # whole seconds, truncated
    used = first[point.tags[mc.DESTINATION_ID]]  # the plain fields are the used one's
    assert point.fields[mc.TRANSFER_S] == used.transfer_s
    assert point.fields[mc.RUN_S] == pytest.approx(used.run_s, abs=0.5)  # 3 decimals, whole s


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
    for waits in ([30.0, 40.0, 50.0], [30.0, math.inf, 50.0]):
        for used in (1, 2):
            d = decision(1, pools=pools, transfer_s=[1.0, 2.0, 3.0], wait_s=waits, estimates=est,
                         order=[2, 0, 1], used=used)  # fmt: skip
            (p,) = points(lines.format(d))
            c = {x.destination_id: x for x in candidates_of(p.fields, p.time_ns)}
            # metric times in whole seconds, truncated: ages at most a second above, never below
            assert c["d0"].metric_age_s == pytest.approx(10.0, abs=0.5)
            assert 4.5 <= c["d2"].metric_age_s < 5.5
            assert math.isnan(c["d1"].metric_age_s)
            assert math.isnan(c["d1"].wait_s) is (waits[1] == math.inf)
            assert [c[f"d{i}"].broker_rank for i in range(3)] == [1, 2, 0]
            assert c["d2"].transfer_s == 3.0 and c["d0"].wait_s == 30.0
            assert p.tags[mc.DESTINATION_ID] == f"d{used}"
            assert p.fields[mc.BROKER_CHOICE] == "d2"
            assert p.fields[mc.BROKER_RANK] == [2, 0][used - 1]
            assert p.fields[mc.TRANSFER_S] == [2.0, 3.0][used - 1]
            # the used one's plain fields: omitted where its candidate has null
            assert (mc.METRIC_AGE_S in p.fields) is (used == 2)
            assert (mc.WAIT_S in p.fields) is (used == 2 or waits[1] != math.inf)


def test_a_failed_ranking_still_logs_the_order_and_the_used_destination():
    (p,) = points(DecisionLines().format(decision(7, order=[1, 2, 0], used=1)))
    c = candidates_of(p.fields)
    assert [x.broker_rank for x in c] == [2, 0, 1]
    assert all(math.isnan(x.transfer_s) and math.isnan(x.run_s) for x in c)
    assert p.tags[mc.DESTINATION_ID] == "d1" and p.fields[mc.BROKER_CHOICE] == "d1"
    assert mc.TRANSFER_S not in p.fields and mc.RUN_S not in p.fields


@pytest.mark.parametrize("tool", ["tool with, odd=chars %s %d", "100%"])
def test_ids_with_spaces_commas_quotes_and_percent_signs_round_trip(tool):
    lines = DecisionLines()
    ids = ("a b", 'c,d="e"', "back\\slash 100%")
    d = decision(5, tool_id=tool, ids=ids, order=[1, 2, 0], used=2)
    (p,) = points(lines.format(d))
    assert p.tags[mc.TOOL_ID] == tool
    assert p.tags[mc.DESTINATION_ID] == ids[2] and p.fields[mc.BROKER_CHOICE] == ids[1]
    assert [c.destination_id for c in candidates_of(p.fields)] == list(ids)


def test_a_tool_id_line_protocol_cannot_carry_is_refused():
    with pytest.raises(LineProtocolError):
        DecisionLines().format(decision(5, tool_id="two\nlines"))
