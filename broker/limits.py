"""Request limits: body size and body read time for every route, item counts per request.

`BodyLimitMiddleware` is a plain ASGI middleware (like broker/auth.py), so every route, present
or added later, is bounded without anyone remembering to:

- a `Content-Length` above `limits.max_body_bytes` is answered 413 before a byte is read;
- a chunked (or lying) body is counted while it is read and cut off with the same 413 as soon as
  it passes the limit;
- a body not received whole within `server.body_timeout_s` is answered 408, so an idle,
  half-sent request cannot hold a connection (and its buffers) forever.

`too_many` builds the 422 for a request with more items than a `limits.*` setting allows.
"""

from __future__ import annotations

import math
import time

import anyio
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# the rest of the body is not read: the connection is closed after the answer
_CLOSE = {"Connection": "close"}


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(
            413, f"request body larger than {limit} bytes (limits.max_body_bytes)", _CLOSE
        )


class BodyTimeout(HTTPException):
    def __init__(self, timeout_s: float):
        super().__init__(
            408, f"request body not received within {timeout_s:g} s (server.body_timeout_s)", _CLOSE
        )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and (length < 0 or length > self.max_bytes):
            error = (
                HTTPException(400, "invalid Content-Length header")
                if length < 0
                else BodyTooLarge(self.max_bytes)
            )
            await _answer(error, scope, receive, send)
            return
        received = 0
        finished = False
        deadline = time.monotonic() + self.timeout_s
        started = False

        async def limited_receive() -> Message:
            nonlocal received, finished
            if finished:  # the body is in: what follows is a disconnect, wait for it as is
                return await receive()
            remaining = deadline - time.monotonic()
            message = None
            if remaining > 0:
                with anyio.move_on_after(remaining):
                    message = await receive()
            if message is None:
                raise BodyTimeout(self.timeout_s)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                finished = not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except (BodyTooLarge, BodyTimeout) as exc:
            # raised where a route reads its body outside the exception middleware's reach
            # (FastAPI's own body parsing handles it inside; this is the backstop)
            if started:
                raise
            await _answer(exc, scope, receive, send)


async def _answer(exc: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=_CLOSE)
    await response(scope, receive, send)


def too_many(
    field: str | tuple[str | int, ...], count: int, limit: int, setting: str
) -> RequestValidationError:
    """The 422 for `count` items in `field` where at most `limit` (the setting) are allowed."""
    loc = (field,) if isinstance(field, str) else field
    name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return RequestValidationError(
        [
            {
                "type": "too_long",
                "loc": ("body", *loc),
                "msg": f"{name} has {count} items, more than the {limit} allowed "
                f"(limits.{setting})",
                "input": None,
                "ctx": {"max_length": limit, "actual_length": count},
            }
        ]
    )


def finite(value: float | None) -> float | None:
    """`value` when it is a finite number, else None (a JSON answer never holds NaN or inf)."""
    return value if value is not None and math.isfinite(value) else None
