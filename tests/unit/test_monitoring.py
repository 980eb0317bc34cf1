"""GET /metrics: Prometheus' text format, guarded by the token, figures that move with traffic."""

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from broker.app import create_app
from tests.support.broker_app import SMALL, settings
from tests.support.decisions import logging_app
from tests.unit.test_decision_fields import BODY

TOKEN = "metrics-token"


def samples(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text, name, **labels):
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def secured(tmp_path):
    with TestClient(create_app(settings(tmp_path, TPV_BROKER_AUTH__TOKENS=TOKEN))) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


def test_metrics_need_the_token(secured):
    assert secured.get("/metrics", headers={"Authorization": ""}).status_code == 401
    r = secured.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_requests_latency_and_decisions_move_with_traffic(secured):
    before = secured.get("/metrics").text
    for _ in range(3):
        assert secured.post("/process_data", json=SMALL).status_code == 200
    secured.post("/process_data", json={"destinations": []})  # 422
    secured.post("/process_data", json=SMALL, headers={"Authorization": "Bearer wrong"})
    secured.get("/arbo/tasks/some-task")
    secured.get("/no/such/path")
    after = secured.get("/metrics").text
    route = {"route": "/process_data", "method": "POST"}
    name = "tpv_broker_http_requests_total"
    assert (
        value(after, name, status="200", **route) - value(before, name, status="200", **route) == 3
    )
    assert value(after, name, status="422", **route) == 1
    assert value(after, name, status="401", **route) == 1  # counted on its route
    assert value(after, name, route="/arbo/tasks/{task:path}", method="GET", status="200") == 1
    assert value(after, name, route="unmatched", method="GET", status="404") == 1
    count = "tpv_broker_http_request_duration_seconds_count"
    assert value(after, count, route="/process_data") == 5
    assert value(after, "tpv_broker_http_request_duration_seconds_bucket",
                 route="/process_data", le="+Inf") == 5  # fmt: skip
    ranked = value(after, "tpv_broker_decisions_total", state="ranked", mode="enforce")
    stale = value(after, "tpv_broker_decisions_total", state="stale", mode="enforce")
    assert ranked + stale == 3  # the 422 and the 401 decided nothing
    assert value(after, "tpv_broker_metrics_refreshes_total") >= 1
    assert value(after, "tpv_broker_metrics_refresh_failures_total") == 0
    assert value(after, "tpv_broker_metrics_refresh_age_seconds") >= 0
    assert value(after, "tpv_broker_decision_log_enabled") == 0  # a snapshot: nothing to log to


def test_decision_log_buffer_and_drops_are_exported(tmp_path):
    app = logging_app(tmp_path, max_points=2 * len(BODY["destinations"]))
    with TestClient(app) as c:
        for job in range(5):
            c.post("/process_data", json={**BODY, "job_id": job})
        text = c.get("/metrics").text
        health = c.get("/health").json()["decision_log"]
    assert value(text, "tpv_broker_decision_log_enabled") == 1
    assert value(text, "tpv_broker_decision_log_buffered") == 2
    assert value(text, "tpv_broker_decision_log_dropped_total") == 3
    assert value(text, "tpv_broker_decision_log_written_total") == 0
    assert health["enabled"] is True
    assert (health["buffered"], health["dropped"], health["written"]) == (2, 3, 0)
