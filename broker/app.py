"""The FastAPI application: routes only. Parsing is pydantic's, decisions are broker.ranking's."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import QueryParams
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from broker import __version__
from broker.arbo.routes import router as arbo_router
from broker.auth import OPEN_PATHS, TokenMiddleware
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


def build_cache(settings: Settings) -> MetricsCache[Prepared]:
    m = settings.metrics
    source = InfluxSource(m.influxdb) if m.source == "influxdb" else SnapshotSource(m.snapshot)
    return MetricsCache(source, lambda view: prepare(view, settings), m.influxdb.refresh_s)


routes = APIRouter()


@routes.get("/health")
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


class ProcessData:
    """POST /process_data[?explain=true]: TPV's call for every job.

    A bare ASGI endpoint (Starlette routes to a class as to an ASGI app): FastAPI's
    per-request parameter resolution, and even Starlette's request wrapper, cost more than
    validating the body. Invalid input raises the same RequestValidationError as any FastAPI
    route, so the app answers the same 422 naming the field; the OpenAPI description comes
    from `_described`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        explain = _query_flag(scope, "explain")
        raw = await _body(receive)
        if raw is None:
            return  # the client went away: nobody to answer
        # Validated straight from bytes by pydantic-core: several times faster than json.loads +
        # validate.
        try:
            body = RankRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise _invalid("body", exc) from None
        state = scope["app"].state
        cache: MetricsCache[Prepared] = state.cache
        # An explain request is a person asking, not TPV routing a job: it is not recorded.
        routed = None if explain else state.routed
        answer = rank_or_fallback(
            body, state.settings, cache.current, cache.status, explain, routed
        )
        await Response(answer.to_json(), media_type="application/json")(scope, receive, send)


async def _body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client disconnected before sending it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


_flag = TypeAdapter(bool)


def _query_flag(scope: Scope, name: str) -> bool:
    """A boolean query parameter, read as FastAPI would (`true`, `1`, `yes`, `on`, ...)."""
    query = scope.get("query_string")
    if not query:
        return False  # TPV sends none: skip parsing
    raw = QueryParams(query).get(name)
    if raw is None:
        return False
    try:
        return _flag.validate_python(raw)
    except ValidationError as exc:
        raise _invalid("query", exc, name) from None


def _invalid(where: str, exc: ValidationError, *loc: str) -> RequestValidationError:
    return RequestValidationError(
        [{**e, "loc": (where, *loc, *e["loc"])} for e in exc.errors(include_url=False)]
    )


# The OpenAPI description of /process_data (the route above serves it; this is never called).
_described = APIRouter()


@_described.post(
    "/process_data",
    response_model=RankResponse,
    summary="Rank destinations",
    operation_id="process_data",
)
async def _process_data_described(
    body: RankRequest,
    explain: Annotated[bool, Query(description="add per-destination reasons")] = False,
) -> RankResponse:
    """Rank TPV's candidate destinations for a job, best first."""
    raise AssertionError("documentation only: served by broker.app.ProcessData")


@routes.get("/destinations")
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
    if settings.auth.tokens:
        app.add_middleware(TokenMiddleware, tokens=settings.auth.tokens)
    app.include_router(routes)
    # TPV's route is matched first: it is called for every job.
    app.router.routes.insert(0, Route("/process_data", ProcessData(), methods=["POST"]))
    app.include_router(arbo_router)
    app.include_router(reprioritize_router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, routes=[*app.routes, *_described.routes]
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

    app.openapi = openapi
    return app
