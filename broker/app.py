"""The FastAPI application: routes only. Parsing is pydantic's, decisions are broker.ranking's."""

from __future__ import annotations

import logging
import secrets
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from broker import __version__
from broker.arbo.routes import router as arbo_router
from broker.config import Settings
from broker.errors import install_error_handlers
from broker.metrics.cache import MetricsCache
from broker.metrics.influx import InfluxSource
from broker.metrics.snapshot import SnapshotSource
from broker.ranking.models import RankRequest, RankResponse
from broker.ranking.rank import Prepared, prepare, rank_or_fallback
from broker.ranking.routed import RoutedLedger
from broker.reprioritize.routes import router as reprioritize_router
from broker.status import destinations_view, site_free_fraction

log = logging.getLogger(__name__)
_bearer = HTTPBearer(auto_error=False)


def build_cache(settings: Settings) -> MetricsCache[Prepared]:
    m = settings.metrics
    source = InfluxSource(m.influxdb) if m.source == "influxdb" else SnapshotSource(m.snapshot)
    return MetricsCache(source, lambda view: prepare(view, settings), m.influxdb.refresh_s)


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """When `auth.tokens` is set, every route but /health needs one of them as a Bearer token."""
    tokens = request.app.state.settings.auth.tokens
    if not tokens:
        return
    given = credentials.credentials if credentials else ""
    if not any(secrets.compare_digest(given.encode(), t.encode()) for t in tokens):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


open_routes = APIRouter()
protected = APIRouter(dependencies=[Depends(require_token)])


@open_routes.get("/health")
async def health(request: Request) -> dict[str, Any]:
    cache: MetricsCache[Prepared] = request.app.state.cache
    st = cache.status
    view = cache.current.view
    newest = view.newest_s
    return {
        "status": "degraded" if st.last_error or view.empty else "ok",
        "version": __version__,
        "metrics": {
            "source": view.source,
            "last_refresh_s": st.last_success_s,
            "last_error": st.last_error,
            "refreshes": st.refreshes,
            "failures": st.failures,
            "newest_point_age_s": None if newest is None else round(view.now() - newest, 1),
            "sites": len(view.cluster),
        },
    }


@protected.post(
    "/process_data",
    response_model=RankResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RankRequest.model_json_schema()}},
        }
    },
)
async def process_data(
    request: Request,
    explain: Annotated[bool, Query(description="add per-destination reasons")] = False,
) -> Response:
    # The body is validated straight from bytes by pydantic-core: several times faster than
    # FastAPI's json.loads + validate, which matters on TPV's hot path.
    try:
        body = RankRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    cache: MetricsCache[Prepared] = request.app.state.cache
    # An explain request is a person asking, not TPV routing a job: it is not recorded.
    routed = None if explain else request.app.state.routed
    answer = rank_or_fallback(
        body, request.app.state.settings, cache.current, cache.status, explain, routed
    )
    return Response(answer.to_json(), media_type="application/json")


@protected.get("/destinations")
async def destinations(request: Request) -> dict[str, Any]:
    cache: MetricsCache[Prepared] = request.app.state.cache
    return destinations_view(request.app.state.settings, cache.current.view)


def create_app(settings: Settings, cache: MetricsCache[Prepared] | None = None) -> FastAPI:
    """Build the app. The metric cache starts refreshing when the app starts serving."""
    cache = cache or build_cache(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.monotonic()
        cache.start()
        log.info(
            "broker %s ready: source=%s, %d configured destinations (%.2f s)",
            __version__,
            settings.metrics.source,
            len(settings.destinations),
            time.monotonic() - started,
        )
        yield
        cache.stop()

    app = FastAPI(title="TPV Broker", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.cache = cache
    # Live metrics lag the decisions: remember what was routed until the site reports it.
    # A snapshot is a frozen moment in which nothing is ever routed.
    app.state.routed = (
        RoutedLedger(settings.ranking.routed_grace_s, settings.metrics.staleness_s)
        if settings.metrics.source == "influxdb"
        else None
    )
    # ARBO reads a site's current load through this hook (None: unknown or stale).
    app.state.site_load = lambda site: site_free_fraction(settings, cache.current.view, site)
    install_error_handlers(app)
    app.include_router(open_routes)
    app.include_router(protected)
    app.include_router(arbo_router, dependencies=[Depends(require_token)])
    app.include_router(reprioritize_router, dependencies=[Depends(require_token)])
    return app
