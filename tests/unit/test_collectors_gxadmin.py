"""How the broker reads gxadmin's recorded `iquery` output (tests/fixtures/gxadmin/)."""

from __future__ import annotations

from pathlib import Path

from broker.metrics.view import MetricsView
from metric_contract.lineprotocol import parse_lines
from metric_contract.measurements import QUEUE, RUNTIME

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gxadmin"
TOOL = "toolshed.g2.bx.psu.edu/repos/iuc/metaphlan/metaphlan/3.0.8+galaxy0"


def points(name: str):
    return list(parse_lines((FIXTURES / name).read_text().splitlines()))


def test_destination_queue_run_time_names_match_the_contract():
    pts = points("destination-queue-run-time.iquery.txt")
    assert {p.measurement for p in pts} == {RUNTIME}
    assert all(set(p.tags) == {"destination_id", "tool_id"} for p in pts)
    assert {"count", "median_queue", "median_run", "perc_95_queue", "perc_95_run"} <= set(
        pts[0].fields
    )
    assert all(p.time_ns is None for p in pts)  # gxadmin emits no timestamp


def test_destination_queue_run_time_values_reach_the_view_in_seconds():
    view = MetricsView.from_points(points("destination-queue-run-time.iquery.txt"), source="t")
    stats = view.runtimes[("condor_tpv", TOOL)]
    assert stats.count == 56
    assert stats.median_queue == 50 and stats.median_run == 628.5
    assert stats.perc_95_queue == 1071.5 and stats.perc_95_run == 2183.25


def test_queue_by_destination_reaches_the_view():
    view = MetricsView.from_points(points("queue-by-destination.iquery.txt"), source="t")
    assert {p.measurement for p in points("queue-by-destination.iquery.txt")} == {QUEUE}
    assert view.queues["multicore"]["queued"].count == 16
    assert view.queues["multicore"]["running"].count == 64
    assert "queued" not in view.queues["normal"]  # no row: nothing queued there


def test_the_docs_example_measurement_name_is_not_read():
    """gxadmin's README still shows the pre-#52 name; such points are outside the contract."""
    view = MetricsView.from_points(points("queue-by-destination.docs-example.txt"), source="t")
    assert view.queues == {}
