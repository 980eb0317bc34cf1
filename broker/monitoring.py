"""`GET /metrics`: the broker's own metrics in Prometheus' text format (prometheus-client).

Guarded by the bearer token like every route but /health (`broker.auth`): Prometheus sends it
with `authorization: {credentials: ...}` in its scrape config (docs/deployment.md).

- `tpv_broker_http_requests_total{route, method, status}` and
  `tpv_broker_http_request_duration_seconds{route}` (histogram), per route template (an
  unknown path counts as `route="unmatched"`, so a scanner cannot grow the label set);
- `tpv_broker_decisions_total{state, mode}`: state `ranked` (by expected time), `stale` (no
  candidate had current metrics: the fallback order answered) or `fallback` (the ranking
  failed: the fallback order answered);
- the metric refresh: `..._metrics_refresh_age_seconds` (since the last good refresh),
  `..._metrics_newest_point_age_seconds`, `..._metrics_refreshes_total`,
  `..._metrics_refresh_failures_total`;
- the decision log: `..._decision_log_buffered` (decisions, and `_points`), `..._dropped_total`,
  `..._written_total`, `..._rejected_total`, `..._write_failures_total`.

Request counts and latencies are observed by `RequestMetrics`, a plain ASGI middleware (a few
microseconds per request); everything else is read when Prometheus scrapes (`BrokerCollector`),
so the request path pays nothing for it. Each app has its own registry: the figures are this
process's (the broker runs one uvicorn worker).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.auth import route_path

PREFIX = "tpv_broker"
# /process_data answers in about a millisecond; /reprioritize and ARBO take longer
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"
# the classic text format every Prometheus reads (what `generate_latest` writes for our names)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RequestMetrics:
    """Counts and times every HTTP request, labelled by the route that served it."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, static_paths: set[str]):
        self.app = app
        # routes without path parameters, known before routing (a 401 is counted on its route)
        self.static_paths = static_paths
        self.requests = Counter(
            f"{PREFIX}_http_requests", "HTTP requests", ["route", "method", "status"],
            registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "time from the request to the end of its answer",
            ["route"],
            buckets=BUCKETS,
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception escaping the app: the server answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = route_path(scope)
            if path not in self.static_paths:
                route = scope.get("route")  # set by the router when a route matched
                path = getattr(route, "path", UNMATCHED)
            self.requests.labels(path, scope["method"], str(status)).inc()
            self.latency.labels(path).observe(time.perf_counter() - started)


class BrokerCollector:
    """What Prometheus reads from the app's state at each scrape."""

    def __init__(self, state: Any):
        self.state = state

    def collect(self) -> Iterable[Metric]:
        state = self.state
        decisions = state.decisions
        counts = CounterMetricFamily(
            f"{PREFIX}_decisions", "routing decisions by state and mode", labels=["state", "mode"]
        )
        for (decided, mode), n in decisions.counts.items():
            counts.add_metric([decided, mode], n)
        yield counts
        cache = state.cache
        status = cache.status
        now = time.time()
        if status.last_success_s is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_metrics_refresh_age_seconds",
                "seconds since the last successful metrics refresh",
                value=now - status.last_success_s,
            )
        view = cache.current.view
        newest = view.newest_s
        if newest is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_metrics_newest_point_age_seconds",
                "age of the newest metric point the broker holds",
                value=max(0.0, view.now() - newest),
            )
        yield CounterMetricFamily(
            f"{PREFIX}_metrics_refreshes", "metrics refreshes tried", value=status.refreshes
        )
        yield CounterMetricFamily(
            f"{PREFIX}_metrics_refresh_failures", "metrics refreshes failed", value=status.failures
        )
        writer = state.decision_writer
        yield GaugeMetricFamily(
            f"{PREFIX}_decision_log_enabled", "1 when decisions are logged", value=decisions.enabled
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_decision_log_buffered",
            "decisions waiting to be written (in the buffer or being written)",
            value=decisions.buffered + (writer.pending if writer else 0),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_decision_log_buffered_points",
            "candidate points in the buffer (bounded by decision_log.max_buffered_points)",
            value=decisions.buffered_points,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_decision_log_dropped",
            "decisions dropped: the buffer was full, or left at shutdown",
            value=decisions.dropped,
        )
        if writer is not None:
            yield CounterMetricFamily(
                f"{PREFIX}_decision_log_written", "decisions written", value=writer.written
            )
            yield CounterMetricFamily(
                f"{PREFIX}_decision_log_rejected",
                "decisions InfluxDB refused (not retried)",
                value=writer.rejected,
            )
            yield CounterMetricFamily(
                f"{PREFIX}_decision_log_write_failures",
                "failed writes to InfluxDB (each retried)",
                value=writer.failures,
            )


def registry_for(state: Any) -> CollectorRegistry:
    """A registry of the app's own (tests build many apps in one process)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(BrokerCollector(state))
    return registry


router = APIRouter()


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    """The broker's own metrics, in Prometheus' text format."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE)
