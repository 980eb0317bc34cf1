"""Hardening: bounded errors, no 5xx on odd input, connection behaviour, safe defaults (the
limits are in test_limits.py). Each test reproduces a fault found by testing the deployed
service (it failed before the fix)."""

from __future__ import annotations

import json
import logging
import math
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.arbo.store import ArboStore, default_url
from broker.config import DATA_DIR
from tests.support.broker_app import SMALL, reprioritize_body, settings

# -- bounded, encodable errors -----------------------------------------------------------


def test_a_body_that_is_not_utf8_is_422_not_500(client):
    r = client.post(
        "/process_data",
        content=b'{"destinations": [{"id": "\xff\xfe"}]}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"]
    r = client.post("/process_data", content=b"\x80", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_a_422_echoes_a_bounded_excerpt_not_the_input(tmp_path):
    app = create_app(settings(tmp_path, TPV_BROKER_LIMITS__MAX_BODY_BYTES=4_000_000))
    huge_id = "x" * 1_000_000
    body = json.dumps({"destinations": [{"id": huge_id}, {"id": huge_id}], "job_info": 7})
    with TestClient(app) as c:
        r = c.post("/process_data", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and len(r.content) < 4000
        assert {tuple(e["loc"]) for e in r.json()["detail"]} >= {("body", "job_info")}
        bad = c.post(
            "/reprioritize",
            json={"completed": [{"id": 1, "x": [0.0] * 900, "y": "no"}], "pending": []},
        )
        assert bad.status_code == 422 and len(bad.content) < 4000


# -- no 5xx on odd numbers, finite answers -----------------------------------------------


@pytest.mark.parametrize(
    "body, field",
    [
        ({"task": "t", "s": 2, "seconds": 5e-324}, "seconds"),
        ({"task": "t", "s": 2, "seconds": 10, "input_size": 5e-324}, "input_size"),
        ({"task": "t", "s": 2, "seconds": 10, "input_size": 1e300}, "input_size"),
    ],
)
def test_arbo_refuses_subnormal_and_absurd_numbers(client, body, field):
    r = client.post("/arbo/feedback", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field]


def test_a_store_holding_unfittable_runs_answers_the_cold_start_not_500(tmp_path):
    store = ArboStore(default_url(tmp_path))
    for s, seconds in [(2, 5e-324), (4, 5e-324), (8, 100.0)]:  # as accepted before the fix
        store.add_run("poisoned", s, seconds, input_size=5e-324)
    store.dispose()
    with TestClient(create_app(settings(tmp_path))) as c:
        r = c.post("/arbo/parallelism", json={"task": "poisoned", "default_s": 3})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["s"] == 3 and answer["predicted_seconds"] is None
        assert "fit" in answer["reason"] and "cold start" in answer["reason"]
        info = c.get("/arbo/tasks/poisoned")
        assert info.status_code == 200 and info.json()["model"] is None


def _numbers_are_finite(value) -> bool:
    if isinstance(value, dict):
        return all(_numbers_are_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_numbers_are_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def test_explanation_terms_stay_numbers_for_the_largest_accepted_inputs(client):
    body = {
        "destinations": [{"id": "pulsar_it_bari"}, {"id": "pulsar_be_ghent"}],
        "datasets": {str(i): {"object_store_id": "os_x", "size": 1e18} for i in range(50)},
        "job_info": {"mem": 1e9, "cores": 10**6, "gpus": 10**5},
    }
    r = client.post("/process_data?explain=true", json=body)
    assert r.status_code == 200
    for row in r.json()["explanation"]["destinations"]:
        for key in ("transfer_s", "run_s", "p_success", "preference_penalty_s"):
            assert isinstance(row[key], int | float), (key, row[key])
    assert _numbers_are_finite(r.json())


@pytest.mark.parametrize(
    "job_info, datasets, field",
    [
        ({}, {"a": {"size": 1e308}, "b": {"size": 1e308}}, "size"),  # their sum was inf
        ({"mem": 1e308}, {}, "mem"),
        ({"cores": 10**30}, {}, "cores"),
    ],
)
def test_numbers_whose_sums_overflow_are_422(client, job_info, datasets, field):
    body = {**SMALL, "job_info": job_info, "datasets": datasets}
    r = client.post("/process_data?explain=true", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field


def test_reprioritize_refuses_values_near_overflow(client):
    body = reprioritize_body(3)
    body["completed"][0]["y"] = 1e300
    r = client.post("/reprioritize", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "y"


# -- connections -------------------------------------------------------------------------


def test_no_trailing_slash_redirect_reflects_the_host_header(client):
    r = client.get("/health/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 404 and "location" not in r.headers
    r = client.get("/destinations/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert "evil.example" not in r.headers.get("location", "")


def test_head_health_is_200(client):
    r = client.head("/health")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"


# -- defaults ----------------------------------------------------------------------------


def test_a_broker_without_tokens_warns_at_start(tmp_path, caplog):
    with (
        caplog.at_level(logging.WARNING, logger="broker.app"),
        TestClient(create_app(settings(tmp_path))),
    ):
        pass
    assert any("auth.tokens is empty" in r.getMessage() for r in caplog.records)
    caplog.clear()
    secured = create_app(settings(tmp_path, TPV_BROKER_AUTH__TOKENS="tok"))
    with caplog.at_level(logging.WARNING, logger="broker.app"), TestClient(secured):
        pass
    assert not any("auth.tokens" in r.getMessage() for r in caplog.records)


def test_serve_passes_the_connection_settings_to_uvicorn(tmp_path, monkeypatch):
    from broker import cli

    config = tmp_path / "broker.yml"
    config.write_text(
        "server:\n  body_timeout_s: 3\n  limit_concurrency: 17\n  timeout_keep_alive_s: 2\n"
        "  backlog: 64\n"
        f"state_dir: {tmp_path}\nmetrics:\n  snapshot: {DATA_DIR / 'demo-network.lp'}\n"
    )
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    assert cli.main(["serve", "--config", str(config)]) == 0
    assert seen["limit_concurrency"] == 17
    assert seen["timeout_keep_alive"] == 2
    assert seen["backlog"] == 64


# -- a refresh that overruns is not "ok" -------------------------------------------------


class _Hanging:
    """A source whose fetch blocks until released (as a refresh stuck in a DNS lookup, which
    no HTTP timeout covers)."""

    name = "hanging"

    def __init__(self):
        self.release = threading.Event()

    def fetch(self):
        from broker.metrics.view import MetricsView

        self.release.wait(10)
        return MetricsView(source="hanging")


def test_health_is_degraded_while_a_refresh_runs_past_its_deadline(tmp_path):
    from broker.metrics.cache import MetricsCache
    from broker.ranking.derived import derive

    source = _Hanging()
    app_settings = settings(tmp_path)
    cache = MetricsCache(
        source, lambda view: derive(view, app_settings), refresh_s=60, deadline_s=0.2
    )
    app = create_app(app_settings, cache)
    refresher = threading.Thread(target=cache.refresh, daemon=True)
    client = TestClient(app)  # no lifespan: the refresh is driven here
    refresher.start()
    try:
        time.sleep(0.4)
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert "past its 0.2 s deadline" in health["metrics"]["last_error"]
    finally:
        source.release.set()
        refresher.join(5)
    assert cache.overrun_s() is None
