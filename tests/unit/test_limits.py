"""Request limits and the event loop: bodies bounded in size and time, request sizes bounded,
large work off the loop. Each test reproduces a fault found by testing the deployed service
(it failed before the fix)."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from tests.support.broker_app import SMALL, reprioritize_body, serving, settings

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


def test_reprioritize_limits_are_422_naming_field_and_setting(tmp_path):
    app = create_app(
        settings(
            tmp_path,
            TPV_BROKER_LIMITS__REPRIORITIZE_MAX_PENDING=10,
            TPV_BROKER_LIMITS__REPRIORITIZE_MAX_DIMENSIONS=3,
        )
    )
    with TestClient(app) as c:
        err = c.post("/reprioritize", json=reprioritize_body(11)).json()["detail"][0]
        assert err["loc"] == ["body", "pending"]
        assert "limits.reprioritize_max_pending" in err["msg"]
        err = c.post("/reprioritize", json=reprioritize_body(5, dim=4)).json()["detail"][0]
        assert err["loc"] == ["body", "completed", 0, "x"]
        assert "limits.reprioritize_max_dimensions" in err["msg"]
        assert c.post("/reprioritize", json=reprioritize_body(10, dim=3)).status_code == 200


# -- the event loop keeps answering ------------------------------------------------------


def test_health_answers_while_a_large_ranking_request_runs(tmp_path):
    n = 40_000  # ranked in about 1 s on an idle 2-core machine: time for several probes
    app = create_app(
        settings(
            tmp_path,
            TPV_BROKER_LIMITS__MAX_DESTINATIONS=n,
            TPV_BROKER_LIMITS__MAX_BODY_BYTES=16_000_000,
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
    # none for the whole ranking, as it did on the event loop (then the first probe would wait
    # until the ranking ended, and no second one would be sent). Relative to the ranking's own
    # time, so that a loaded machine slows both alike.
    assert len(latencies) >= 2 and max(latencies) < total / 2, (total, latencies)
