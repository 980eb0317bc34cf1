"""How the attempt-outcomes collector splits a job's state history into attempts and names
their destinations (no services: the SQL and InfluxDB ends are in tests/integration)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from collectors.attempts import Job, attempts_of, outcome_lines
from collectors.decision_log import Decision, decisions_query, parse_decisions
from collectors.errors import CollectorError
from metric_contract.lineprotocol import parse_text

T0 = datetime(2026, 5, 4, 10, 0, 0)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def job(state: str, dest: str | None = "pulsar_uk") -> Job:
    return Job(7, "bwa", dest, state, T0, None)


def test_resubmitted_rows_split_attempts_and_end_the_earlier_ones_as_errors():
    history = [
        ("new", at(0)),
        ("queued", at(10)),
        ("running", at(70)),
        ("resubmitted", at(170)),
        ("queued", at(175)),
        ("running", at(200)),
        ("resubmitted", at(260)),
        ("queued", at(261)),
        ("running", at(300)),
        ("ok", at(1000)),
    ]
    attempts = attempts_of(job("ok"), history, runtime_s=None)
    assert [(a.number, a.queue_s, a.run_s, a.state) for a in attempts] == [
        (1, 60.0, 100.0, "error"),
        (2, 25.0, 60.0, "error"),
        (3, 39.0, 700.0, "ok"),
    ]
    assert [a.end for a in attempts] == [at(170), at(260), at(1000)]


def test_runtime_metric_is_the_last_attempts_run_time_only():
    history = [("queued", at(0)), ("running", at(5)), ("resubmitted", at(50))]
    history += [("queued", at(60)), ("running", at(90)), ("ok", at(400))]
    first, last = attempts_of(job("ok"), history, runtime_s=250.0)
    assert first.run_s == 45.0 and last.run_s == 250.0


def test_unfinished_attempt_is_not_written_and_one_that_never_ran_has_no_run_time():
    running = attempts_of(job("running"), [("queued", at(0)), ("running", at(9))], None)
    assert running[0].end is None
    deleted = attempts_of(job("deleted"), [("queued", at(0)), ("deleted", at(30))], None)
    assert (deleted[0].queue_s, deleted[0].run_s, deleted[0].state) == (30.0, 0.0, "deleted")
    lines, missing = outcome_lines(job("running"), running, [Decision(1, "d", "pulsar_eu")])
    assert lines == [] and missing == 0


def test_kth_decision_in_time_order_is_attempt_k_and_galaxy_names_the_last_destination():
    history = [("queued", at(0)), ("running", at(5)), ("resubmitted", at(50))]
    history += [("queued", at(60)), ("running", at(90)), ("error", at(400))]
    attempts = attempts_of(job("error", dest="pulsar_uk"), history, None)
    decisions = [  # given out of order: sorted by time
        Decision(2_000, "second", "pulsar_de"),
        Decision(1_000, "first", "pulsar_eu"),
    ]
    lines, missing = outcome_lines(job("error", dest="pulsar_uk"), attempts, decisions)
    points = list(parse_text("\n".join(lines)))
    assert missing == 0
    assert [(p.tags["destination_id"], p.fields["attempt"], p.fields["ok"]) for p in points] == [
        ("pulsar_eu", 1, False),
        ("pulsar_uk", 2, False),  # Galaxy's job.destination_id wins for the last attempt
    ]
    # the end of the attempt is the point's time: rerunning writes the same point
    assert points[0].time_ns == 1_777_888_850_000_000_000
    assert lines == outcome_lines(job("error", dest="pulsar_uk"), attempts, decisions)[0]


def test_attempts_without_a_decision_are_counted_not_written():
    history = [("queued", at(0)), ("resubmitted", at(5)), ("queued", at(6)), ("ok", at(9))]
    attempts = attempts_of(job("ok"), history, None)
    lines, missing = outcome_lines(job("ok"), attempts, [Decision(1, "only", "pulsar_eu")])
    assert len(lines) == 1 and missing == 1


def test_decision_answer_keeps_each_decisions_destination_by_job_and_refuses_errors():
    payload = {
        "results": [
            {
                "series": [
                    {
                        "name": "routing_decision",
                        "columns": ["time", "job_id", "decision", "destination_id"],
                        "values": [
                            [5, 11, "a", "pulsar_eu"],
                            [5, 11, "a", "pulsar_eu"],  # same decision twice: kept once
                            [9, 11, "b", "pulsar_uk"],
                            [7, None, "c", "pulsar_uk"],  # malformed: skipped
                        ],
                    }
                ]
            }
        ]
    }
    assert parse_decisions(payload) == {
        11: [Decision(5, "a", "pulsar_eu"), Decision(9, "b", "pulsar_uk")]
    }
    with pytest.raises(CollectorError, match="database not found"):
        parse_decisions({"results": [{"error": "database not found: galaxy"}]})
    query = decisions_query(1)  # one point per decision: its tag is the destination used
    assert '"destination_id" FROM "routing_decision"' in query and "now() - 3600s" in query
