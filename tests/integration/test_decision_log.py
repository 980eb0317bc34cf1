"""The decision log against a real InfluxDB 1.x: decisions land as `routing_decision`, survive
InfluxDB stopping mid-test (kept, retried, written once it is back), the buffer bound drops the
oldest and says so, and shutdown writes what is left."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.config import DecisionLogSettings
from metric_contract import measurements as mc
from metric_contract.decision_points import candidates_of
from tests.support.influx_network import REQUEST, history_lines, settings_for, usage_line

pytestmark = pytest.mark.integration
CANDIDATES = len(REQUEST["destinations"])


def app_for(influx, **decision_log):
    settings = settings_for(influx)
    settings.decision_log = DecisionLogSettings(
        **{"flush_s": 0.1, "retry_max_s": 0.3, "shutdown_s": 5, **decision_log}
    )
    return create_app(settings)


def fill(influx):
    now = time.time()
    influx.write(
        [usage_line("site_a", 60, now), usage_line("site_b", 30, now), *history_lines(now)]
    )


def rows(influx) -> list[dict]:
    """Every routing_decision point, tags and fields by name."""
    result = influx.query(f'SELECT * FROM "{mc.DECISIONS}"', epoch="ns")["results"][0]
    out = []
    for series in result.get("series", []):
        for values in series["values"]:
            out.append(dict(zip(series["columns"], values, strict=True)))
    return out


def decisions(influx) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows(influx):
        out.setdefault(row[mc.DECISION], []).append(row)
    return out


def wait_for(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def log_status(client):
    return client.get("/health").json()["decision_log"]


def test_every_decision_with_a_job_id_lands_with_its_candidates(influxdb):
    fill(influxdb)
    with TestClient(app_for(influxdb)) as client:
        explained = client.post("/process_data?explain=true", json=REQUEST).json()
        answers = {}
        for job in (101, 102, 101, 103):  # job 101 resubmitted once
            body = {**REQUEST, "job_id": job}
            answers.setdefault(job, []).append(client.post("/process_data", json=body).json())
        shadow = {**REQUEST, "job_id": 104, "mode": "shadow", "fallback_order": ["dest_b"]}
        client.post("/process_data", json=shadow)
        client.post("/process_data", json=REQUEST)  # no job id: not logged
        wait_for(lambda: log_status(client)["written"] == 5)
        status = log_status(client)
    assert status["dropped"] == 0 and status["buffered"] == 0 and status["last_error"] is None
    logged = decisions(influxdb)
    assert len(logged) == 5
    assert all(len(points) == 1 for points in logged.values())  # one point per decision
    by_job = sorted((p[mc.JOB_ID], p[mc.ATTEMPT], p) for (p,) in logged.values())
    assert [(job, attempt) for job, attempt, _ in by_job] == [
        (101, 1), (101, 2), (102, 1), (103, 1), (104, 1)
    ]  # fmt: skip
    first_101 = next(p for job, attempt, p in by_job if (job, attempt) == (101, 1))
    candidates = candidates_of(first_101, first_101["time"])
    assert len(candidates) == CANDIDATES
    ranked = sorted(candidates, key=lambda c: c.broker_rank)
    assert [c.destination_id for c in ranked] == answers[101][0]["sorted_destinations"]
    assert first_101[mc.DESTINATION_ID] == ranked[0].destination_id  # enforce: the broker's
    assert first_101[mc.CHOSEN_BY] == "broker"
    assert first_101[mc.TOOL_ID] == REQUEST["job_info"]["tool_id"]
    # the predictions are the broker's: as the explanation (made just before, same state) says
    for c in ranked:
        row = next(
            d for d in explained["explanation"]["destinations"] if d["id"] == c.destination_id
        )
        assert c.run_s == pytest.approx(row["run_s"], abs=0.551)  # whole seconds
        assert c.wait_s == pytest.approx(row["wait_s"], abs=0.551)  # whole seconds
        assert c.p_success == pytest.approx(row["p_success"], abs=1e-4)  # 4 decimals
        assert 0 <= c.metric_age_s < 60
    assert first_101[mc.RUN_S] == pytest.approx(ranked[0].run_s, abs=0.5)  # 3 decimals, whole s
    shadowed = next(p for job, _, p in by_job if job == 104)
    assert shadowed[mc.DESTINATION_ID] == "dest_b"
    assert (shadowed[mc.CHOSEN_BY], shadowed[mc.MODE]) == ("fallback", "shadow")


def test_influxdb_stopped_mid_test_keeps_decisions_and_writes_them_when_back(influxdb):
    fill(influxdb)
    with TestClient(app_for(influxdb)) as client:
        client.post("/process_data", json={**REQUEST, "job_id": 1})
        wait_for(lambda: log_status(client)["written"] == 1)
        influxdb.stop()
        for job in range(2, 12):
            assert client.post("/process_data", json={**REQUEST, "job_id": job}).status_code == 200
        wait_for(lambda: log_status(client)["write_failures"] >= 2)  # retried, with backoff
        status = log_status(client)
        assert status["buffered"] == 10 and status["dropped"] == 0
        assert "unreachable" in status["last_error"]
        influxdb.start()
        wait_for(lambda: log_status(client)["written"] == 11)
        status = log_status(client)
    assert status["buffered"] == 0 and status["dropped"] == 0 and status["last_error"] is None
    logged = decisions(influxdb)
    assert sorted(points[0][mc.JOB_ID] for points in logged.values()) == list(range(1, 12))


def test_a_full_buffer_drops_the_oldest_decisions_and_counts_them(influxdb):
    fill(influxdb)
    with TestClient(app_for(influxdb, max_buffered_points=3 * CANDIDATES)) as client:
        client.post("/process_data", json=REQUEST)  # metrics loaded, nothing logged
        influxdb.stop()
        for job in range(1, 9):
            client.post("/process_data", json={**REQUEST, "job_id": job})
        status = log_status(client)
        # the buffer holds the newest three; the writer may hold one batch it is retrying
        # (bounded by decision_log.batch_points), counted as buffered too
        kept = status["buffered"]
        assert status["buffered_points"] == 3 * CANDIDATES
        assert status["dropped"] == 8 - kept and kept >= 3
        influxdb.start()
        wait_for(lambda: log_status(client)["written"] == kept)
    jobs = sorted(points[0][mc.JOB_ID] for points in decisions(influxdb).values())
    assert jobs[-3:] == [6, 7, 8] and len(jobs) == kept


def test_shutdown_writes_what_is_buffered(influxdb):
    fill(influxdb)
    app = app_for(influxdb, flush_s=3600)  # nothing written while serving
    with TestClient(app) as client:
        for job in range(1, 6):
            client.post("/process_data", json={**REQUEST, "job_id": job})
        assert log_status(client)["written"] == 0
    assert app.state.decision_writer.written == 5
    assert len(decisions(influxdb)) == 5


def test_shutdown_with_influxdb_down_counts_what_is_lost(influxdb):
    fill(influxdb)
    app = app_for(influxdb, flush_s=3600, shutdown_s=1)
    with TestClient(app) as client:
        for job in range(1, 4):
            client.post("/process_data", json={**REQUEST, "job_id": job})
        influxdb.stop()
    assert app.state.decisions.dropped == 3 and app.state.decision_writer.written == 0
