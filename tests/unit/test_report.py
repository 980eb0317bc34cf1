"""The report's join and figures on a hand-made log (the end-to-end run is in
tests/integration/test_report_e2e.py), and the attempt counts the success model reads."""

from __future__ import annotations

import argparse

import pytest

import metric_contract.measurements as mc
from broker.metrics.view import MetricsView
from broker.report.cli import duration_s
from broker.report.figures import build_report, calibration, error_stats
from broker.report.read import Log, decisions_from, join, outcomes_from
from metric_contract.lineprotocol import Point
from tests.support.decisions import decision_point

S = 1_000_000_000


def decision(job, dec, t, cands, mode="enforce"):
    """cands: (destination, rank, used, wait, run, p)"""
    used = next(d for d, _, u, *_ in cands if u)
    rows = [
        dict(destination_id=d, broker_rank=rank, transfer_s=0.0, wait_s=wait, run_s=run,
             p_success=p)
        for d, rank, _, wait, run, p in cands
    ]  # fmt: skip
    return [decision_point(job, dec, t * S, used, rows, mode=mode)]


def outcome(job, attempt, dest, state, queue, run, t):
    return Point(
        mc.ATTEMPT_OUTCOMES,
        {mc.DESTINATION_ID: dest, mc.TOOL_ID: "bwa", mc.STATE: state, "host": "galaxy"},
        {
            mc.JOB_ID: job,
            mc.ATTEMPT: attempt,
            mc.QUEUE_S: queue,
            mc.RUN_S: run,
            mc.OK: state == "ok",
        },
        t * S,
    )


def test_kth_decision_of_a_job_meets_its_kth_attempt():
    points = decision(1, "late", 50, [("uk", 0, True, 5, 5, 0.9)])
    points += decision(1, "early", 10, [("eu", 0, True, 5, 5, 0.9)])
    decisions = decisions_from(points)
    outcomes = outcomes_from(
        [outcome(1, 2, "uk", "ok", 1, 1, 60), outcome(1, 1, "eu", "error", 1, 1, 40)]
        + [outcome(2, 1, "eu", "ok", 1, 1, 40)]  # no decision
    )
    pairs, unmatched = join(decisions, outcomes)
    assert [(p.outcome.attempt, p.decision.id) for p in pairs] == [(1, "early"), (2, "late")]
    assert unmatched == 1


def test_error_figures_floor_times_at_one_second_for_the_ratio():
    stats = error_stats([0.4, 100.0, 10.0, 30.0], [0.0, 40.0, 10.0, 10.0])
    assert stats == {"n": 4, "median_abs_error_s": 10.2, "bias_s": 10.2, "within_2x": 0.5}
    assert error_stats([], [])["n"] == 0


def test_calibration_bins_leave_out_deleted_attempts():
    points = []
    rows = [(1, 0.95, "ok"), (2, 0.92, "error"), (3, 0.15, "error"), (4, 0.5, "deleted")]
    for job, p, _state in rows:
        points += decision(job, f"d{job}", 10, [("eu", 0, True, 1, 1, p)])
    outcomes = outcomes_from([outcome(j, 1, "eu", s, 1, 1, 20) for j, _, s in rows])
    pairs, _ = join(decisions_from(points), outcomes)
    cal = calibration(pairs)
    assert cal["n"] == 3
    assert cal["bins"] == [
        {"bin": [0.1, 0.2], "count": 1, "mean_predicted": 0.15, "observed_rate": 0.0},
        {"bin": [0.9, 1.0], "count": 2, "mean_predicted": 0.935, "observed_rate": 0.5},
    ]
    assert cal["brier"] == round((0.05**2 + 0.92**2 + 0.15**2) / 3, 4)


def test_an_attempt_at_a_destination_that_was_not_a_candidate_is_counted_apart():
    points = decision(1, "d", 10, [("eu", 0, True, 1, 1, 0.9), ("uk", 1, False, 1, 1, 0.9)])
    points += decision(2, "e", 10, [("eu", 1, False, 1, 1, 0.9), ("uk", 0, True, 1, 1, 0.9)])
    outcomes = [outcome(1, 1, "de", "ok", 1, 1, 20), outcome(2, 1, "uk", "ok", 2, 2, 20)]
    log = Log(decisions_from(points), outcomes_from(outcomes), window_start_ns=0)
    report = build_report(log, 86400)
    assert report["attempts_not_a_candidate"] == 1
    assert report["all"]["errors"]["run"]["n"] == 1
    assert report["all"]["first_choice_differed"] == {"decisions": 2, "differed": 0, "share": 0.0}
    assert report["all"]["turnaround"]["broker_choice_used"]["n"] == 1
    assert set(report["destinations"]) == {"de", "eu", "uk"}


def test_durations():
    assert duration_s("7d") == 7 * 86400 and duration_s("90") == 90 and duration_s("1.5h") == 5400
    for bad in ("", "0d", "-1d", "7 days", "d"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a positive duration"):
            duration_s(bad)


def test_view_counts_attempts_in_place_of_job_outcomes_where_they_count():
    points = [
        Point(
            mc.OUTCOMES, {mc.DESTINATION_ID: "eu", mc.TOOL_ID: "bwa"}, {"ok": 9, "error": 0}, 5 * S
        ),
        Point(
            mc.OUTCOMES, {mc.DESTINATION_ID: "uk", mc.TOOL_ID: "bwa"}, {"ok": 3, "error": 0}, 5 * S
        ),
        outcome(1, 1, "eu", "error", 1, 1, 7),
        outcome(1, 2, "uk", "ok", 1, 1, 8),
        outcome(2, 1, "eu", "ok", 1, 1, 9),
        outcome(3, 1, "de", "deleted", 1, 1, 9),  # counts for nothing
        # the InfluxDB source's aggregate: 4 attempts in one row
        Point(
            mc.ATTEMPT_OUTCOMES,
            {mc.DESTINATION_ID: "eu", mc.TOOL_ID: "bwa", mc.STATE: "failed"},
            {"count": 4},
            6 * S,
        ),
    ]
    view = MetricsView.from_points(points, source="test")
    counts = {k: (o.ok, o.error, o.time_s) for k, o in view.outcomes.items()}
    assert counts == {("eu", "bwa"): (1, 5, 9.0), ("uk", "bwa"): (1, 0, 8.0)}


def test_an_empty_window_gives_zeros_and_nulls_that_render():
    from broker.report.text import render

    report = build_report(Log([], [], 0), 3600)
    assert report["decisions"] == report["attempts_joined"] == 0
    assert report["all"]["errors"]["total"] == {
        "n": 0,
        "median_abs_error_s": None,
        "bias_s": None,
        "within_2x": None,
    }
    assert report["all"]["first_choice_differed"]["share"] is None
    assert "Decisions in the window: 0" in render(report)
