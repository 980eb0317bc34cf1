"""The broker against a real InfluxDB 1.x: reading, background refresh, a stopped server (the
misbehaving ones are in test_influx_faults.py)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from broker.app import build_cache, create_app
from broker.metrics.influx import InfluxSource
from metric_contract.lineprotocol import format_point
from tests.support.influx_network import REQUEST, TOOL, history_lines, settings_for, usage_line

pytestmark = pytest.mark.integration


def test_source_reads_newest_point_of_every_series(influxdb):
    now = time.time()
    influxdb.write(
        [
            usage_line("site_a", free=10, t_s=now - 600),
            usage_line("site_a", free=40, t_s=now - 5),  # the newest wins
            usage_line("site b,with=odd chars", free=3, t_s=now - 5),
            format_point(
                "queue_by_destination",
                {"destination_id": "dest_a", "state": "queued"},
                {"count": 7},
                int(now * 1e9),
            ),
            *history_lines(now - 3600),
        ]
    )
    view = InfluxSource.of(settings_for(influxdb).metrics).fetch()
    assert view.cluster["site_a"].cpus_free == 40
    assert view.cluster["site_a"].time_s == pytest.approx(now - 5, abs=0.01)
    assert view.cluster["site b,with=odd chars"].cpus_free == 3
    assert view.queues["dest_a"]["queued"].count == 7
    assert view.runtimes[("dest_b", TOOL)].median_run == 900
    assert view.outcomes[("dest_a", TOOL)].error == 1
    assert view.frozen_now_s is None  # live: ages against the wall clock


def test_background_refresh_changes_the_ranking_when_a_site_fills_up(influxdb):
    now = time.time()
    influxdb.write(
        [usage_line("site_a", 60, now), usage_line("site_b", 30, now), *history_lines(now)]
    )
    with TestClient(create_app(settings_for(influxdb))) as client:
        assert client.post("/process_data", json=REQUEST).json()["sorted_destinations"] == [
            "dest_a",
            "dest_b",
        ]
        influxdb.write(usage_line("site_a", 0, time.time(), idle=200))  # site_a fills up
        deadline = time.monotonic() + 15
        order = None
        while time.monotonic() < deadline:
            order = client.post("/process_data", json=REQUEST).json()["sorted_destinations"]
            if order == ["dest_b", "dest_a"]:
                break
            time.sleep(0.1)
        assert order == ["dest_b", "dest_a"]


def test_silent_site_turns_stale(influxdb):
    now = time.time()
    influxdb.write(
        [usage_line("site_a", 60, now - 600), usage_line("site_b", 2, now), *history_lines(now)]
    )
    cache = build_cache(settings_for(influxdb))
    with TestClient(create_app(settings_for(influxdb), cache)) as client:
        exp = client.post("/process_data?explain=true", json=REQUEST).json()["explanation"]
    states = {d["id"]: d["state"] for d in exp["destinations"]}
    assert states == {"dest_a": "stale", "dest_b": "fresh"}
    assert [d["id"] for d in exp["destinations"]] == ["dest_b", "dest_a"]


def test_influxdb_stopped_mid_test_keeps_the_last_good_view(influxdb):
    now = time.time()
    influxdb.write(
        [usage_line("site_a", 0, now, idle=200), usage_line("site_b", 60, now), *history_lines(now)]
    )
    settings = settings_for(influxdb)
    cache = build_cache(settings)
    with TestClient(create_app(settings, cache)) as client:
        before = client.post("/process_data", json=REQUEST).json()
        influxdb.stop()
        assert cache.refresh() is False
        r = client.post("/process_data?explain=true", json=REQUEST)
        assert r.status_code == 200
        answer = r.json()
        assert (
            answer["sorted_destinations"] == before["sorted_destinations"] == ["dest_b", "dest_a"]
        )
        assert "unreachable" in answer["explanation"]["source_error"]
        assert answer["explanation"]["degraded"] is True
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["metrics"]["failures"] >= 1
        influxdb.start()
        influxdb.write(
            [usage_line("site_a", 60, time.time()), usage_line("site_b", 60, time.time())]
        )
        assert cache.refresh() is True
        assert client.get("/health").json()["status"] == "ok"
