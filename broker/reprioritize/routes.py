"""``POST /reprioritize``: thin HTTP edge over :func:`broker.reprioritize.service.reprioritize`.

The handler is a plain ``def`` on purpose: FastAPI runs it in its worker thread pool, so a
GP fit (CPU-bound, up to a few hundred ms) never blocks the event loop that answers TPV's
ranking requests.

A NaN or infinite number (Python's ``json.dumps`` writes a bare ``NaN``) gets the 422 naming the
field through the app-wide handler of :mod:`broker.errors`.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError

from broker.config import LimitsSettings, Settings
from broker.limits import too_many
from broker.reprioritize.models import ReprioritizeRequest, ReprioritizeResponse
from broker.reprioritize.service import NotModelled, reprioritize

router = APIRouter(tags=["reprioritize"])


@router.post(
    "/reprioritize",
    response_model=ReprioritizeResponse,
    response_model_exclude_none=True,
    summary="Order pending tasks by a Gaussian-process surrogate of the completed ones",
)
def post_reprioritize(
    request: ReprioritizeRequest,
    http: Request,
    explain: bool = Query(False, description="add the fitted model and each task's score"),
) -> ReprioritizeResponse:
    settings = getattr(http.app.state, "settings", None) or Settings()
    check_limits(request, settings.limits)
    try:
        return reprioritize(request, explain=explain)
    except NotModelled as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "completed"), "msg": str(exc)}]
        ) from None


def check_limits(request: ReprioritizeRequest, limits: LimitsSettings) -> None:
    """422 naming the field and the setting when the request is larger than the limits."""
    for field, count, limit, setting in (
        ("pending", len(request.pending), limits.reprioritize_max_pending, "pending"),
        ("completed", len(request.completed), limits.reprioritize_max_completed, "completed"),
    ):
        if count > limit:
            raise too_many(field, count, limit, f"reprioritize_max_{setting}")
    dim = len(request.completed[0].x)
    if dim > limits.reprioritize_max_dimensions:
        raise too_many(
            ("completed", 0, "x"),
            dim,
            limits.reprioritize_max_dimensions,
            "reprioritize_max_dimensions",
        )
