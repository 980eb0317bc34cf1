"""A real Prometheus scrapes the broker's /metrics with the bearer token; its counters move with
traffic (read back through Prometheus' HTTP API)."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from broker.app import create_app
from tests.support.broker_app import SMALL, serving, settings
from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.integration
TOKEN = "scrape-token"
REQUESTS = 'tpv_broker_http_requests_total{job="broker", route="/process_data", status="200"}'


def wait_value(prom, promql, at_least, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = prom.value(promql)
        if value is not None and value >= at_least:
            return value
        assert time.monotonic() < deadline, f"{promql} = {value}, expected >= {at_least}"
        time.sleep(0.5)


@pytest.fixture
def broker(tmp_path):
    app = create_app(settings(tmp_path, TPV_BROKER_AUTH__TOKENS=TOKEN))
    with serving(app) as url:
        yield url


def test_prometheus_scrapes_the_broker_and_counters_move_with_traffic(broker, tmp_path):
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus not found: install the Debian package prometheus (make deps)")
    target = broker.removeprefix("http://")
    prom = PrometheusServer(
        tmp_path / "prometheus",
        {"broker": {"target": target, "token": TOKEN}, "no_token": {"target": target}},
    )
    prom.start()
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=broker, headers=headers, timeout=5) as client:
            for _ in range(5):
                assert client.post("/process_data", json=SMALL).status_code == 200
            first = wait_value(prom, REQUESTS, 5)
            assert prom.value('up{job="broker"}') == 1
            assert prom.value('up{job="no_token"}') == 0  # /metrics is guarded by the token
            for _ in range(7):
                client.post("/process_data", json=SMALL)
            assert wait_value(prom, REQUESTS, first + 7) == first + 7
        decided = prom.value('sum(tpv_broker_decisions_total{job="broker"})')
        assert decided == 12
        count = (
            'tpv_broker_http_request_duration_seconds_count{job="broker", route="/process_data"}'
        )
        assert prom.value(count) == 12
        assert prom.value('tpv_broker_metrics_refreshes_total{job="broker"}') >= 1
    finally:
        prom.stop()
