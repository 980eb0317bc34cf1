"""App-wide error handling: every invalid request gets a 422 that names the field.

FastAPI's default 422 echoes the offending input; a NaN or an infinity there (Python clients
send them as bare `NaN` / `Infinity`) would make the error itself unserialisable and turn the
answer into a 500. Non-finite numbers in the echo are replaced by their text.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")  # JSON's spelling
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def _validation_error(request: Request, exc: RequestValidationError):
    errors = [_finite(err) for err in exc.errors()]
    return await request_validation_exception_handler(request, RequestValidationError(errors))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
