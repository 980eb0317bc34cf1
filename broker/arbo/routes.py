"""ARBO endpoints: ``POST /arbo/parallelism``, ``POST /arbo/feedback``, ``GET /arbo/tasks/{task}``.

Wiring is one line, ``app.include_router(broker.arbo.routes.router)``. What the routes read from
``request.app.state``:

- ``arbo``: an :class:`ArboService`; created on first use from ``settings.arbo`` and
  ``settings.state_dir`` when absent, so the app factory need not know about it.
- ``settings``: the broker's :class:`broker.config.Settings` (only needed to create ``arbo``).
- ``site_load`` (optional): ``callable(site) -> float | None``, the site's HTCondor free CPU
  fraction (``cpus_free / cpus``) from the broker's metric view. ARBO's ``load`` feature is the
  busy fraction ``1 - free``. Without it, or without a ``site`` in the request, load is simply
  not a feature unless the caller sends ``load`` itself.

Handlers are plain ``def``: FastAPI runs them in its thread pool, where blocking database calls
and model fits belong.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError

from broker.arbo.models import (
    FeedbackRequest,
    FeedbackResponse,
    ParallelismRequest,
    ParallelismResponse,
    TaskInfo,
)
from broker.arbo.service import ArboService
from broker.config import Settings

log = logging.getLogger(__name__)


router = APIRouter(prefix="/arbo", tags=["arbo"])
_create_lock = threading.Lock()


def service(request: Request) -> ArboService:
    state = request.app.state
    svc = getattr(state, "arbo", None)
    if svc is None:
        with _create_lock:
            svc = getattr(state, "arbo", None)
            if svc is None:
                settings = getattr(state, "settings", None) or Settings()
                svc = ArboService(settings.arbo, settings.state_dir)
                state.arbo = svc
    return svc


def site_load(request: Request, site: str | None) -> float | None:
    """Busy fraction of ``site`` from the broker's metric view; None when unknown.

    A failing metric view must never fail the request: the load is just not a feature then.
    """
    provider = getattr(request.app.state, "site_load", None)
    if site is None or provider is None:
        return None
    try:
        free = provider(site)
    except Exception:  # noqa: BLE001 - any metric-source failure degrades to "no load"
        log.warning("arbo: site_load(%r) failed; deciding without load", site, exc_info=True)
        return None
    if free is None or not math.isfinite(free):
        return None
    return min(max(1.0 - float(free), 0.0), 1.0)


@router.post("/parallelism", response_model=ParallelismResponse)
def parallelism(body: ParallelismRequest, request: Request) -> ParallelismResponse:
    load = body.load if body.load is not None else site_load(request, body.site)
    return service(request).parallelism(body, load)


@router.post("/feedback", response_model=FeedbackResponse)
def feedback(body: FeedbackRequest, request: Request) -> FeedbackResponse:
    svc = service(request)
    limit = svc.settings.max_run_seconds
    if body.seconds > limit:
        raise RequestValidationError(
            [
                {
                    "type": "less_than_equal",
                    "loc": ("body", "seconds"),
                    "msg": f"seconds must be <= {limit:g} (arbo.max_run_seconds)",
                    "input": body.seconds,
                }
            ]
        )
    load = body.load if body.load is not None else site_load(request, body.site)
    return svc.feedback(body, load)


@router.get("/tasks/{task:path}", response_model=TaskInfo)
def task_info(
    task: Annotated[str, Path(min_length=1, max_length=255, description="workflow task name")],
    request: Request,
) -> TaskInfo:
    return service(request).task_info(task)
