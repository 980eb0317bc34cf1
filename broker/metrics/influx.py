"""Read the metric contract from InfluxDB 1.x with InfluxQL over its HTTP API.

The 2.x client cannot talk to 1.x servers, and the 1.x `/query` endpoint is plain HTTP + JSON,
so httpx is all that is needed. One request carries one statement per measurement of the
contract (`metric_contract.measurements.SERIES_TAGS`), each asking for the newest point of every
series within the lookback window.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import httpx

from broker.config import InfluxSettings
from broker.metrics.view import MetricsView, SourceError
from metric_contract.lineprotocol import Point
from metric_contract.measurements import SERIES_TAGS


def latest_points_query(lookback_s: float) -> str:
    """InfluxQL for the newest point per series of every contract measurement."""
    statements = []
    for measurement, tags in SERIES_TAGS.items():
        group = ", ".join(f'"{t}"' for t in tags)
        statements.append(
            f'SELECT * FROM "{measurement}" WHERE time > now() - {int(lookback_s)}s '
            f"GROUP BY {group} ORDER BY time DESC LIMIT 1"
        )
    return "; ".join(statements)


def points_from_response(payload: Any) -> list[Point]:
    """Turn a /query JSON answer (epoch=ns) into points; raise SourceError on anything else."""
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise SourceError("InfluxDB answered without a 'results' list")
    points: list[Point] = []
    for result in payload["results"]:
        if not isinstance(result, dict):
            raise SourceError("InfluxDB answered a malformed result")
        if "error" in result:
            raise SourceError(f"InfluxDB query error: {result['error']}")
        for series in result.get("series", []):
            try:
                name, columns = series["name"], series["columns"]
                tags = {k: str(v) for k, v in (series.get("tags") or {}).items() if v}
                for row in series["values"]:
                    record = dict(zip(columns, row, strict=True))
                    time_ns = int(record.pop("time"))
                    fields = {k: v for k, v in record.items() if v is not None}
                    points.append(Point(name, tags, fields, time_ns))
            except (KeyError, TypeError, ValueError) as exc:
                raise SourceError(f"InfluxDB answered a malformed series: {exc!r}") from exc
    return points


def redact_url(url: str) -> str:
    """`url` with any user name and password replaced by `***`: safe to show and to log."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:  # IPv6
            host = f"[{host}]"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit(parts._replace(netloc=f"***@{host}"))
    except ValueError:
        return "<unparseable URL>"


class InfluxConnection:
    """Where an InfluxDB 1.x is and how to log in (the metric source reads it, the decision log
    writes to it): `base_url` without credentials, `auth` for basic auth (`username`/`password`
    in the settings win over the URL's), `shown_url` and `redact` for errors and the log."""

    def __init__(self, settings: InfluxSettings):
        self.settings = settings
        parts = urlsplit(settings.url)
        # `username`/`password` in the settings win over the URL's
        self.auth: tuple[str, str] | None = None
        if settings.username:
            self.auth = (settings.username, settings.password or "")
        elif parts.username is not None:
            self.auth = (unquote(parts.username), unquote(parts.password or ""))
        self.shown_url = redact_url(settings.url)
        self.base_url = self.shown_url.replace("***@", "", 1).rstrip("/")
        self._secrets = [
            x for x in (settings.url, settings.password, parts.password) if x and len(x) >= 3
        ]

    def redact(self, text: str) -> str:
        """`text` with the URL's credentials and the password replaced."""
        for secret in self._secrets:
            text = text.replace(secret, self.shown_url if secret == self.settings.url else "***")
        return text


class InfluxSource(InfluxConnection):
    """One refresh is one GET of /query under one deadline, `timeout_s`, for the whole exchange
    (connecting, sending, waiting and reading the answer): a server that trickles its answer is
    cut off at the deadline, not only when one read stalls. The exchange runs on an event loop
    of its own, so the deadline cancels it wherever it is. Credentials (in the settings or the
    URL) are sent as basic auth and never appear in an error, the URL requested or the log."""

    name = "influxdb"

    async def _exchange(self) -> tuple[int, bytes]:
        s = self.settings
        params = {"db": s.database, "q": latest_points_query(s.lookback_s), "epoch": "ns"}
        with anyio.fail_after(s.timeout_s):
            async with httpx.AsyncClient(timeout=s.timeout_s, auth=self.auth) as client:
                response = await client.get(f"{self.base_url}/query", params=params)
                return response.status_code, response.content

    def _run_exchange(self) -> tuple[int, bytes]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the refresh thread: no loop here
            return anyio.run(self._exchange)
        # called from a running loop (the app's start-up refresh): a thread of its own
        with ThreadPoolExecutor(1, thread_name_prefix="influx-fetch") as pool:
            return pool.submit(anyio.run, self._exchange).result()

    def fetch(self) -> MetricsView:
        s = self.settings
        shown = self.shown_url
        try:
            status, content = self._run_exchange()
        except (TimeoutError, httpx.TimeoutException):
            raise SourceError(
                f"InfluxDB at {shown} did not answer within {s.timeout_s} s"
            ) from None
        except httpx.HTTPError as exc:
            raise SourceError(self.redact(f"InfluxDB at {shown} is unreachable: {exc}")) from None
        if status != 200:
            text = content[:200].decode("utf-8", "replace")
            raise SourceError(self.redact(f"InfluxDB at {shown} answered HTTP {status}: {text}"))
        try:
            payload = json.loads(content)
        except ValueError:
            raise SourceError(f"InfluxDB at {shown} answered something that is not JSON") from None
        return MetricsView.from_points(
            points_from_response(payload), source=f"influxdb:{s.database}"
        )

    def close(self) -> None:
        """Nothing to release: each refresh opens and closes its own connection."""
