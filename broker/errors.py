"""App-wide error handling: every invalid request gets a 422 that names the field.

FastAPI's default 422 echoes the offending input whole. That made three kinds of answer wrong:
a NaN or an infinity in the echo (Python clients send bare `NaN` / `Infinity`) cannot be written
as JSON, a body that is not UTF-8 cannot be encoded at all (both were 500s), and a large invalid
body came back whole (50 MB in, 52 MB out). Here each error keeps its `type`, `loc` and `msg`
and only a bounded excerpt of its input: a scalar as it is (non-finite numbers as their JSON
spelling), text and bytes cut to `EXCERPT_CHARS` characters (bytes decoded with replacement
characters), a list or an object as a note of its size.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

EXCERPT_CHARS = 200
MAX_ERRORS = 20


def _text(value: str) -> str:
    if len(value) <= EXCERPT_CHARS:
        return value
    return f"{value[:EXCERPT_CHARS]}... ({len(value)} characters)"


def excerpt(value: Any) -> Any:
    """A bounded, JSON-safe stand-in for an offending input."""
    if value is None or isinstance(value, bool | int):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
            return _text(str(value))
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")  # JSON's spelling
    if isinstance(value, bytes | bytearray):
        return _text(bytes(value[: EXCERPT_CHARS * 4]).decode("utf-8", "replace")) + (
            f" ({len(value)} bytes)" if len(value) > EXCERPT_CHARS * 4 else ""
        )
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    if isinstance(value, list | tuple | set):
        return f"a list of {len(value)} items"
    return _text(type(value).__name__)


def _loc(loc: Any) -> list[Any]:
    return [p if isinstance(p, int) else _text(str(p)) for p in loc]


def _error(err: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": str(err.get("type", "value_error")),
        "loc": _loc(err.get("loc", ())),
        "msg": _text(str(err.get("msg", ""))),
    }
    if "input" in err:
        out["input"] = excerpt(err["input"])
    ctx = err.get("ctx")
    if isinstance(ctx, dict):
        out["ctx"] = {
            str(k): excerpt(v if isinstance(v, int | float) else str(v)) for k, v in ctx.items()
        }
    return out


def error_list(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = exc.errors()
    shown = [_error(e) for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        shown.append(
            {
                "type": "too_many_errors",
                "loc": [],
                "msg": f"{len(errors) - MAX_ERRORS} more errors not shown",
            }
        )
    return shown


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # registered for that class only
    return JSONResponse({"detail": error_list(exc)}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
