"""POST /process_data[?explain=true]: TPV's call for every job.

What the route reads from the app's state: ``settings``, ``cache`` (the `MetricsCache` of
derived views), ``routed`` (the in-flight ledger, or None) and ``decisions`` (the
`DecisionLog`: every decision counted, those with a job id buffered when the log is on).
`install(app)` mounts it ahead of every other route (it is called for every job) and
`described` documents it in OpenAPI.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, FastAPI, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import QueryParams
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from broker.auth import CALLER
from broker.config import LimitsSettings
from broker.demo import EXAMPLES
from broker.limits import BodyTooLarge, too_many
from broker.metrics.cache import MetricsCache
from broker.ranking.context import RankContext
from broker.ranking.derived import DerivedView
from broker.ranking.models import RankRequest, RankResponse
from broker.ranking.rank import rank_or_fallback


class ProcessData:
    """A bare ASGI endpoint (Starlette routes to a class as to an ASGI app): FastAPI's
    per-request parameter resolution, and even Starlette's request wrapper, cost more than
    validating the body. Invalid input raises the same RequestValidationError as any FastAPI
    route, so the app answers the same 422 naming the field; the OpenAPI description comes
    from `described`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        explain = _query_flag(scope, "explain")
        caller = scope.get("state", {}).get(CALLER)
        state = scope["app"].state
        limits = state.settings.limits
        raw = await _body(receive, limits.max_body_bytes)
        if raw is None:
            return  # the client went away: nobody to answer
        # An explain request is a person asking, not TPV routing a job: it is not recorded.
        ledger = None if explain else state.routed
        decisions = None if explain else state.decisions
        # A large request is parsed and ranked in a worker thread, so the loop keeps serving
        # /health and TPV's small requests meanwhile; a small one costs less than the hand-off.
        if len(raw) > limits.inline_body_bytes:
            answer = await anyio.to_thread.run_sync(
                _parse_and_rank, state, raw, explain, ledger, caller, decisions
            )
        else:
            body = _parse(raw, limits)
            if len(body.destinations) > limits.inline_destinations:
                answer = await anyio.to_thread.run_sync(
                    _rank, state, body, explain, ledger, caller, decisions
                )
            else:
                answer = _rank(state, body, explain, ledger, caller, decisions)
        await Response(answer, media_type="application/json")(scope, receive, send)


def _parse(raw: bytes, limits: LimitsSettings) -> RankRequest:
    # Validated straight from bytes by pydantic-core: several times faster than json.loads +
    # validate.
    try:
        body = RankRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid("body", exc) from None
    _check_limits(body, limits)
    return body


def _rank(state, body: RankRequest, explain: bool, ledger, caller: str | None, decisions) -> str:
    """The JSON answer to a valid request; `caller`: the Galaxy server's token name, or None;
    `decisions`: the decision log, or None (an explain request is not counted)."""
    cache: MetricsCache[DerivedView] = state.cache
    ctx = RankContext(
        state.settings,
        cache.current,
        cache.status,
        ledger,
        caller=caller,
        decisions=decisions,
    )
    return rank_or_fallback(ctx, body.to_query(), explain).to_json()


def _parse_and_rank(state, raw: bytes, explain: bool, ledger, caller: str | None, decisions) -> str:
    return _rank(state, _parse(raw, state.settings.limits), explain, ledger, caller, decisions)


def _check_limits(body: RankRequest, limits: LimitsSettings) -> None:
    for field, count, limit, setting in (
        ("destinations", len(body.destinations), limits.max_destinations, "max_destinations"),
        ("datasets", len(body.datasets), limits.max_datasets, "max_datasets"),
        ("objectstores", len(body.objectstores), limits.max_objectstores, "max_objectstores"),
        # TPV's order of the candidates: never longer than the candidates themselves
        ("preference", len(body.preference or ()), limits.max_destinations, "max_destinations"),
        (
            "fallback_order",
            len(body.fallback_order or ()),
            limits.max_destinations,
            "max_destinations",
        ),  # fmt: skip
        ("tpv_scores", len(body.tpv_scores or ()), limits.max_destinations, "max_destinations"),
    ):
        if count > limit:
            raise too_many(field, count, limit, setting)


async def _body(receive: Receive, max_bytes: int) -> bytes | None:
    """The whole request body; None when the client disconnected before sending it. A body
    longer than `max_bytes` is refused (413) as soon as it passes the limit, chunked or not."""
    chunks = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > max_bytes:
            raise BodyTooLarge(max_bytes)
        chunks.append(chunk)
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


def install(app: FastAPI) -> None:
    """Mount /process_data first: it is matched before any other route."""
    app.router.routes.insert(0, Route("/process_data", ProcessData(), methods=["POST"]))


def openapi_examples() -> dict[str, dict[str, Any]]:
    """The request bodies of examples/requests, offered by /docs ("Try it out"). A checkout
    has them (the `uvicorn broker.asgi:app --reload` workflow); an installed broker without
    the examples documents the schema only."""
    examples: dict[str, dict[str, Any]] = {}
    for path in sorted(EXAMPLES.glob("*.json")):
        try:
            value = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a broken example must not stop the broker
        examples[path.stem] = {"summary": path.stem.replace("-", " "), "value": value}
    return examples


# The OpenAPI description of /process_data (`ProcessData` serves it; this is never called).
described = APIRouter()


@described.post(
    "/process_data",
    response_model=RankResponse,
    summary="Rank destinations",
    operation_id="process_data",
)
async def _process_data_described(
    body: Annotated[RankRequest, Body(openapi_examples=openapi_examples())],
    explain: Annotated[bool, Query(description="add per-destination reasons")] = False,
) -> RankResponse:
    """Rank TPV's candidate destinations for a job, best first."""
    raise AssertionError("documentation only: served by broker.ranking.routes.ProcessData")
