"""Bearer tokens: when `auth.tokens` is set, every route but the open ones needs one of them.

Each token has a name (a Galaxy server's, when `auth.tokens` is a mapping): the name of the one
a request carried is put in the request's state (`CALLER`), so the decision log says which
server asked.

A plain ASGI middleware rather than a FastAPI dependency: TPV calls /process_data for every
job, and a header comparison costs a fraction of resolving a dependency per request. New routes
are guarded by default; only the paths in `OPEN_PATHS` are not (with trailing slashes too: the
app does not redirect them, so they answer 404 whether a token is sent or not).
"""

from __future__ import annotations

import secrets

from starlette.responses import JSONResponse
from starlette.status import WS_1008_POLICY_VIOLATION
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

# Liveness for load balancers and systemd checks; the version and the API description, which
# hold no data.
OPEN_PATHS = frozenset(
    {"/health", "/version", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
CALLER = "galaxy_server"  # key in the ASGI scope's "state": the name of the caller's token


def bearer_token(scope: Scope) -> bytes:
    """The token of an `Authorization: Bearer <token>` header, else empty."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else b""
    return b""


def route_path(scope: Scope) -> str:
    """The path the app routes on: without the proxy's `root_path` (as Starlette strips it)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


class TokenMiddleware:
    def __init__(self, app: ASGIApp, tokens: dict[str, str]):
        self.app = app
        self.tokens = [(name, t.encode()) for name, t in tokens.items()]

    def allowed(self, scope: Scope) -> bool:
        # `/health/` too: no route, so a 404 rather than a 401 that would suggest one.
        if route_path(scope).rstrip("/") in OPEN_PATHS:
            return True
        given = bearer_token(scope)
        # compare with every token, always: the time taken does not tell which one was close
        # (none is empty: the config refuses one, so a request without a token matches none)
        matches = [name for name, t in self.tokens if secrets.compare_digest(given, t)]
        if not matches:
            return False
        scope.setdefault("state", {})[CALLER] = matches[0]
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allowed(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await WebSocketClose(code=WS_1008_POLICY_VIOLATION)(scope, receive, send)
        else:
            response = JSONResponse(
                {"detail": "missing or invalid bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
