"""GET /health and GET /destinations: what the broker currently knows of its metrics.

What the routes read from ``request.app.state``: ``cache`` (a `MetricsCache` whose current
value has the `view`), ``settings``, ``routed`` (the in-flight ledger, or None) and
``decisions``/``decision_writer`` (the decision log and its writer; the writer is None without
an InfluxDB).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from broker import __version__
from broker.metrics.cache import MetricsCache
from broker.metrics.destinations import destinations_view

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    cache: MetricsCache[Any] = request.app.state.cache  # of views with what is derived
    st = cache.status
    view = cache.current.view
    newest = view.newest_s
    overrun = cache.overrun_s()
    error = st.last_error
    if overrun is not None:
        error = (
            f"metrics refresh running for {overrun:.0f} s, past its {cache.deadline_s:g} s deadline"
        )
    ledger = request.app.state.routed
    # a ledger that cannot be shared still ranks correctly, but herding protection is partial
    ledger_error = None if ledger is None else ledger.error
    return {
        "status": "degraded" if error or ledger_error or view.empty else "ok",
        "version": __version__,
        "metrics": {
            "source": view.source,
            "last_refresh_s": st.last_success_s,
            "last_error": error,
            "refreshes": st.refreshes,
            "failures": st.failures,
            "newest_point_age_s": None if newest is None else round(view.now() - newest, 1),
            "sites": len(view.cluster),
        },
        "ledger": None if ledger is None else ledger.describe(view.now()),
        "decision_log": decision_log_status(request.app.state),
    }


def decision_log_status(state: Any) -> dict[str, Any]:
    """What /health says of the decision log (`enabled`: false without an InfluxDB)."""
    decisions, writer = state.decisions, state.decision_writer
    if writer is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "buffered": decisions.buffered + writer.pending,
        "buffered_points": decisions.buffered_points,
        "max_buffered_points": decisions.max_points,
        "dropped": decisions.dropped,
        "written": writer.written,
        "rejected": writer.rejected,
        "write_failures": writer.failures,
        "last_write_s": writer.last_write_s,
        "last_error": writer.last_error,
    }


# a probe's HEAD gets the same status and headers (the body is dropped by the server)
router.add_api_route("/health", health, methods=["HEAD"], operation_id="health_head")


@router.get("/destinations")
async def destinations(request: Request) -> dict[str, Any]:
    cache: MetricsCache[Any] = request.app.state.cache  # of views with what is derived
    return destinations_view(request.app.state.settings, cache.current.view)
