"""Hardening: request limits, the event loop kept free, bounded errors, no 5xx on odd input,
credentials never shown, connection behaviour. Each test reproduces a finding of the hardening
issue (it failed before the fix)."""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.arbo.store import ArboStore, default_url
from broker.config import DATA_DIR, load_settings
from broker.demo import free_port

SMALL = {"destinations": [{"id": "pulsar_it_bari"}, {"id": "pulsar_be_ghent"}]}


def settings(tmp_path, **env):
    return load_settings(
        environ={"TPV_BROKER_STATE_DIR": str(tmp_path), **{k: str(v) for k, v in env.items()}}
    )


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(settings(tmp_path))) as c:
        yield c


@contextmanager
def serving(app):
    """A real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- body size ---------------------------------------------------------------------------


def test_a_declared_content_length_over_the_limit_is_413_before_reading(client):
    r = client.post(
        "/process_data",
        content=b"x" * 5_000_000,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert "4194304" in r.json()["detail"] and "limits.max_body_bytes" in r.json()["detail"]


@pytest.mark.parametrize("path", ["/process_data", "/reprioritize", "/arbo/feedback"])
def test_a_chunked_body_is_counted_while_read_on_every_route(tmp_path, path):
    app = create_app(settings(tmp_path, TPV_BROKER_LIMITS__MAX_BODY_BYTES=100_000))

    def chunks():  # no Content-Length: sent chunked
        for _ in range(50):
            yield b" " * 10_000

    with TestClient(app) as c:
        r = c.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert "100000 bytes (limits.max_body_bytes)" in r.json()["detail"]


def test_process_data_counts_its_body_itself():
    """The bare ASGI endpoint refuses a long body even without the middleware in front."""
    import asyncio

    from broker.limits import BodyTooLarge
    from broker.ranking.routes import _body

    parts = iter([{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 3)

    async def receive():
        return next(parts)

    with pytest.raises(BodyTooLarge):
        asyncio.run(_body(receive, 1000))


def test_an_idle_half_sent_body_is_answered_408(tmp_path):
    app = create_app(settings(tmp_path, TPV_BROKER_SERVER__BODY_TIMEOUT_S=0.5))
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"POST /process_data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n" + b'{"destinations": ['
            )
            started = time.monotonic()
            answer = b""
            while chunk := sock.recv(65536):  # the answer closes the connection
                answer += chunk
            waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert b"server.body_timeout_s" in answer
    assert waited < 3


# -- items per request -------------------------------------------------------------------


def test_too_many_destinations_or_datasets_is_422_naming_field_and_limit(tmp_path):
    app = create_app(
        settings(tmp_path, TPV_BROKER_LIMITS__MAX_DESTINATIONS=3, TPV_BROKER_LIMITS__MAX_DATASETS=2)
    )
    with TestClient(app) as c:
        body = {"destinations": [{"id": f"d{i}"} for i in range(4)]}
        err = c.post("/process_data", json=body).json()["detail"][0]
        assert err["loc"] == ["body", "destinations"]
        assert "limits.max_destinations" in err["msg"] and "3" in err["msg"]
        body = {**SMALL, "datasets": {str(i): {"size": 1} for i in range(3)}}
        r = c.post("/process_data", json=body)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "datasets"]
        assert "limits.max_datasets" in r.json()["detail"][0]["msg"]
        r = c.post("/process_data", json={**SMALL, "preference": ["x"] * 4})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "preference"]
        within = {"destinations": [{"id": f"d{i}"} for i in range(3)]}
        assert c.post("/process_data", json=within).status_code == 200


def _reprioritize_body(pending, dim=2, completed=5):
    return {
        "completed": [{"id": i, "x": [i * 0.1] * dim, "y": float(i)} for i in range(completed)],
        "pending": [{"id": f"p{i}", "x": [i * 0.01] * dim} for i in range(pending)],
    }


def test_reprioritize_limits_are_422_naming_field_and_setting(tmp_path):
    app = create_app(
        settings(
            tmp_path,
            TPV_BROKER_LIMITS__REPRIORITIZE_MAX_PENDING=10,
            TPV_BROKER_LIMITS__REPRIORITIZE_MAX_DIMENSIONS=3,
        )
    )
    with TestClient(app) as c:
        err = c.post("/reprioritize", json=_reprioritize_body(11)).json()["detail"][0]
        assert err["loc"] == ["body", "pending"]
        assert "limits.reprioritize_max_pending" in err["msg"]
        err = c.post("/reprioritize", json=_reprioritize_body(5, dim=4)).json()["detail"][0]
        assert err["loc"] == ["body", "completed", 0, "x"]
        assert "limits.reprioritize_max_dimensions" in err["msg"]
        assert c.post("/reprioritize", json=_reprioritize_body(10, dim=3)).status_code == 200


# -- the event loop keeps answering ------------------------------------------------------


def test_health_answers_while_a_large_ranking_request_runs(tmp_path):
    n = 20_000
    app = create_app(
        settings(
            tmp_path,
            TPV_BROKER_LIMITS__MAX_DESTINATIONS=n,
            TPV_BROKER_LIMITS__MAX_BODY_BYTES=8_000_000,
        )
    )
    big = {"destinations": [{"id": f"dest_{i}"} for i in range(n)]}
    with serving(app) as url, ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        ranked = pool.submit(httpx.post, f"{url}/process_data", json=big, timeout=120)
        time.sleep(0.3)  # the body is sent and being ranked
        latencies = []
        while not ranked.done() and len(latencies) < 20:
            t0 = time.monotonic()
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200
            latencies.append(time.monotonic() - t0)
            time.sleep(0.05)
        answer = ranked.result()
        total = time.monotonic() - started
    assert answer.status_code == 200 and len(answer.json()["sorted_destinations"]) == n
    assert latencies, f"the large request ended too soon ({total:.2f} s) to probe /health"
    # each probe waits for the GIL the ranking thread holds (and once for the body parse), but
    # none for the whole ranking, as it did on the event loop
    assert len(latencies) >= 3 and max(latencies) < 1.0, (total, latencies)


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
    body = _reprioritize_body(3)
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
