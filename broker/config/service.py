"""How the broker serves HTTP: its server (uvicorn), who may call it (tokens) and how large one
request may be. The three are read together when the app and its server are built."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from broker.config.section import Section


class AuthSettings(Section):
    """`tokens`: a list (anonymous callers), or a mapping of a Galaxy server's name to its
    token, so that one broker serves several Galaxies and its log says which one called."""

    tokens: list[str] | dict[str, str] = Field(default_factory=list, repr=False)

    @field_validator("tokens", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # the environment's form: "tok1,tok2"; an empty string means no tokens
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("tokens")
    @classmethod
    def _no_empty_token(cls, tokens: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        values = list(tokens.values()) if isinstance(tokens, dict) else tokens
        values = [t.strip() for t in values]
        if not all(values):
            # a request without a token would match it: an unset variable must not open the API
            raise ValueError("an empty token would let requests without a token in")
        if isinstance(tokens, dict):
            if len(set(values)) != len(values):
                raise ValueError("two servers share a token: the log could not tell them apart")
            return {name: t.strip() for name, t in tokens.items()}
        return values

    def named(self) -> dict[str, str]:
        """Each token under the name the log gives its caller (`token 1`, ... for a list)."""
        if isinstance(self.tokens, dict):
            return dict(self.tokens)
        return {f"token {i}": t for i, t in enumerate(self.tokens, start=1)}


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    log_level: str = "info"
    body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="a request body not received whole within this is answered 408",
    )
    limit_concurrency: int = Field(
        default=200, ge=1, description="connections + tasks at once; beyond, uvicorn answers 503"
    )
    timeout_keep_alive_s: int = Field(
        default=5, ge=1, description="idle keep-alive connections are closed after this (whole s)"
    )
    backlog: int = Field(default=2048, ge=1, description="pending connections the OS queues")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="uvicorn worker processes; with more than one, set ledger.redis_url so they "
        "share what was just routed",
    )
    root_path: str = Field(
        default="",
        description="the path prefix a reverse proxy serves the broker under (e.g. /tpv-broker), "
        "with the prefix stripped before it forwards; uvicorn's root_path",
    )

    @field_validator("root_path")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("must start with / (e.g. /tpv-broker), or be empty")
        return value


class LimitsSettings(Section):
    """Bounds on one request: what is larger is refused (413 or 422 naming the limit) instead of
    holding the broker's memory and CPU (see docs/api.md, "Limits")."""

    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="request body size, any route (413)"
    )
    max_destinations: int = Field(
        default=1000, ge=1, description="candidate destinations per /process_data request"
    )
    max_datasets: int = Field(default=10_000, ge=1, description="datasets per /process_data")
    max_objectstores: int = Field(default=1000, ge=1, description="object stores per request")
    inline_body_bytes: int = Field(
        default=16 * 1024,
        ge=0,
        description="a /process_data body larger than this is parsed and ranked in a worker "
        "thread, off the event loop",
    )
    inline_destinations: int = Field(
        default=50,
        ge=0,
        description="a /process_data request with more candidates is ranked in a worker thread",
    )
    reprioritize_max_pending: int = Field(
        default=5000, ge=1, description="pending tasks per /reprioritize request"
    )
    reprioritize_max_completed: int = Field(
        default=1000, ge=1, description="completed tasks per /reprioritize request"
    )
    reprioritize_max_dimensions: int = Field(
        default=50, ge=1, description="values per point (x) in /reprioritize"
    )
