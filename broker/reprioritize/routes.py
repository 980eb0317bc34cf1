"""``POST /reprioritize``: thin HTTP edge over :func:`broker.reprioritize.service.reprioritize`.

The handler is a plain ``def`` on purpose: FastAPI runs it in its worker thread pool, so a
GP fit (CPU-bound, up to a few hundred ms) never blocks the event loop that answers TPV's
ranking requests.

A NaN or infinite number (Python's ``json.dumps`` writes a bare ``NaN``) gets the 422 naming the
field through the app-wide handler of :mod:`broker.errors`.
"""

from __future__ import annotations

from fastapi import APIRouter, Query

from broker.reprioritize.models import ReprioritizeRequest, ReprioritizeResponse
from broker.reprioritize.service import reprioritize

router = APIRouter(tags=["reprioritize"])


@router.post(
    "/reprioritize",
    response_model=ReprioritizeResponse,
    response_model_exclude_none=True,
    summary="Order pending tasks by a Gaussian-process surrogate of the completed ones",
)
def post_reprioritize(
    request: ReprioritizeRequest,
    explain: bool = Query(False, description="add the fitted model and each task's score"),
) -> ReprioritizeResponse:
    return reprioritize(request, explain=explain)
