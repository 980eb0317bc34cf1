"""The FastAPI application: routes only. Parsing is pydantic's, decisions are broker.ranking's."""

from __future__ import annotations

import gc
import logging
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from broker import __version__
from broker.arbo.routes import router as arbo_router
from broker.auth import OPEN_PATHS, TokenMiddleware
from broker.config import ConfigError, Settings
from broker.decisions.log import DecisionLog
from broker.decisions.writer import DecisionWriter
from broker.errors import install_error_handlers
from broker.limits import BodyLimitMiddleware
from broker.metrics.cache import MetricsCache
from broker.metrics.destinations import site_free_fraction
from broker.metrics.influx import InfluxSource
from broker.metrics.routes import router as metrics_router
from broker.metrics.snapshot import SnapshotSource
from broker.monitoring import RequestMetrics, registry_for
from broker.monitoring import router as monitoring_router
from broker.ranking import routes as ranking_routes
from broker.ranking.derived import DerivedView, derive
from broker.ranking.routed import RoutedLedger
from broker.ranking.shared_ledger import SharedLedger
from broker.reprioritize.routes import router as reprioritize_router

log = logging.getLogger(__name__)


def configure_logging(settings: Settings) -> None:
    """The broker's log format at `server.log_level` (no-op when logging is already set up)."""
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def build_cache(settings: Settings) -> MetricsCache[DerivedView]:
    m = settings.metrics
    source: InfluxSource | SnapshotSource
    if m.source == "influxdb":
        source = InfluxSource.of(m)
    elif m.snapshot is None:
        raise ConfigError("metrics.snapshot is required for source snapshot")
    else:
        source = SnapshotSource(m.snapshot)
    # the InfluxDB exchange ends at timeout_s; the rest is room for deriving the view
    deadline = 2 * m.influxdb.timeout_s + 1 if m.source == "influxdb" else m.influxdb.refresh_s
    return MetricsCache(source, lambda view: derive(view, settings), m.influxdb.refresh_s, deadline)


def build_ledger(settings: Settings) -> RoutedLedger | None:
    """What was just routed and is not yet in the metrics: shared through Redis when
    `ledger.redis_url` is set, else this process's own. None for a snapshot: a frozen moment in
    which nothing is ever routed."""
    if settings.metrics.source != "influxdb":
        if settings.ledger.redis_url:
            log.warning("ledger.redis_url is not used: the snapshot source keeps no ledger")
        return None
    grace, horizon = settings.ranking.routed_grace_s, settings.metrics.staleness_s
    if settings.ledger.redis_url:
        return SharedLedger(grace, horizon, settings.ledger)
    if settings.server.workers > 1:
        log.warning(
            "server.workers is %d but ledger.redis_url is not set: each worker counts only its "
            "own routed jobs, so bursts can herd; set ledger.redis_url",
            settings.server.workers,
        )
    return RoutedLedger(grace, horizon)


_frozen = False


def _freeze_startup_objects() -> None:
    """Put what the process holds once it has started (FastAPI, pydantic's validators, numpy,
    scikit-learn: about a million objects that live as long as it does) out of the cyclic
    garbage collector's reach, once per process. Without it, every full collection walks them
    all, and the decision log makes full collections happen: it keeps each request's lists
    alive for the second until they are written, so they outlive the young generations. Measured
    in process (5000 requests of the production shape, medians of 10 paired runs on a noisy
    2-core machine): the log cost +24% per request without this, +15% with it (docs/api.md,
    "The decision log's cost")."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


def create_app(settings: Settings, cache: MetricsCache[DerivedView] | None = None) -> FastAPI:
    """Build the app. The metric cache starts refreshing when the app starts serving."""
    cache = cache or build_cache(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.monotonic()
        cache.start()
        if ledger is not None:
            ledger.start()
        if writer is not None:
            writer.start()
        _freeze_startup_objects()
        log.info(
            "broker %s ready: source=%s, %d configured destinations (%.2f s)",
            __version__,
            settings.metrics.source,
            len(settings.destinations),
            time.monotonic() - started,
        )
        if not settings.auth.tokens:
            log.warning(
                "auth.tokens is empty: every route is open to anyone who can reach the broker; "
                "set auth.tokens (TPV_BROKER_AUTH__TOKENS) unless only trusted hosts can"
            )
        yield
        if writer is not None:
            await writer.stop()  # uvicorn has finished the requests: write what they decided
        cache.stop()
        if ledger is not None:
            ledger.stop()

    # No trailing-slash redirects: Starlette builds their Location from the request's Host
    # header, which a client chooses. `/health/` is a 404 like any unknown path.
    app = FastAPI(
        title="TPV Broker", version=__version__, lifespan=lifespan, redirect_slashes=False
    )
    app.state.settings = settings
    app.state.cache = cache
    # Live metrics lag the decisions: remember what was routed until the site reports it.
    ledger = build_ledger(settings)
    app.state.routed = ledger
    # Every decision is counted; with InfluxDB, those with a job id are logged to it.
    log_on = settings.decision_log.enabled and settings.metrics.source == "influxdb"
    decisions = DecisionLog(settings.decision_log.max_buffered_points if log_on else None)
    writer = (
        DecisionWriter(decisions, settings.metrics.influxdb, settings.decision_log)
        if log_on
        else None
    )
    app.state.decisions = decisions
    app.state.decision_writer = writer
    app.state.registry = registry_for(app.state)
    # ARBO reads a site's current load through this hook (None: unknown or stale).
    app.state.site_load = lambda site: site_free_fraction(settings, cache.current.view, site)
    install_error_handlers(app)
    if settings.auth.tokens:
        app.add_middleware(TokenMiddleware, tokens=settings.auth.named())
    # a request is bounded before anything else reads it
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.limits.max_body_bytes,
        timeout_s=settings.server.body_timeout_s,
    )
    static_paths: set[str] = set()  # filled below, once the routes are there
    # outermost: every answer is counted and timed, a 401 or a 413 too
    app.add_middleware(RequestMetrics, registry=app.state.registry, static_paths=static_paths)
    ranking_routes.install(app)
    app.include_router(metrics_router)
    app.include_router(monitoring_router)

    @app.get("/version", summary="The broker's version")
    async def version() -> dict[str, str]:
        return {"version": __version__}

    app.include_router(arbo_router)
    app.include_router(reprioritize_router)
    paths = (getattr(route, "path", "{") for route in app.routes)
    static_paths.update(p for p in paths if "{" not in p)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                routes=[*app.routes, *ranking_routes.described.routes],
            )
            if settings.auth.tokens:  # /docs then offers "Authorize" for the bearer token
                schema.setdefault("components", {})["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer"}
                }
                schema["security"] = [{"bearer": []}]
                for path in OPEN_PATHS & schema["paths"].keys():
                    for operation in schema["paths"][path].values():
                        operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it
    return app
