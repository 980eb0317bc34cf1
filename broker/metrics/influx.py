"""Read the metric contract from InfluxDB 1.x with InfluxQL over its HTTP API.

The 2.x client cannot talk to 1.x servers, and the 1.x `/query` endpoint is plain HTTP + JSON,
so httpx is all that is needed. One request carries one statement per measurement of the
contract (`metric_contract.measurements.SERIES_TAGS`), each asking for the newest point of every
series within the lookback window.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

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


class InfluxSource:
    """One refresh is one GET of /query, bounded as a whole by `timeout_s`: connecting, sending
    and each read are bounded by it too, and the answer is read in chunks against the deadline,
    so a server that trickles its answer cannot hold the refresh beyond `timeout_s` plus one
    read. Credentials (settings or in the URL) never appear in an error or the log."""

    name = "influxdb"

    def __init__(self, settings: InfluxSettings, client: httpx.Client | None = None):
        self.settings = settings
        parts = urlsplit(settings.url)
        # Credentials in the URL are sent as basic auth, and the URL requested (which httpx
        # logs) carries none; `username`/`password` in the settings win over the URL's.
        auth = None
        if settings.username:
            auth = (settings.username, settings.password or "")
        elif parts.username is not None:
            auth = (unquote(parts.username), unquote(parts.password or ""))
        self.shown_url = redact_url(settings.url)
        self._base = self.shown_url.replace("***@", "", 1).rstrip("/")
        self._client = client or httpx.Client(timeout=settings.timeout_s, auth=auth)
        self._secrets = [
            x for x in (settings.password, parts.password, settings.url) if x and len(x) >= 3
        ]

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, self.shown_url if secret == self.settings.url else "***")
        return text

    def _get(self, url: str, params: dict[str, str]) -> tuple[int, bytes]:
        s = self.settings
        deadline = time.monotonic() + s.timeout_s
        chunks: list[bytes] = []
        with self._client.stream("GET", url, params=params) as response:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("deadline passed while reading the answer")
        return response.status_code, b"".join(chunks)

    def fetch(self) -> MetricsView:
        s = self.settings
        shown = self.shown_url
        params = {"db": s.database, "q": latest_points_query(s.lookback_s), "epoch": "ns"}
        try:
            status, content = self._get(f"{self._base}/query", params)
        except httpx.TimeoutException:
            raise SourceError(
                f"InfluxDB at {shown} did not answer within {s.timeout_s} s"
            ) from None
        except httpx.HTTPError as exc:
            raise SourceError(self._redact(f"InfluxDB at {shown} is unreachable: {exc}")) from None
        if status != 200:
            text = content[:200].decode("utf-8", "replace")
            raise SourceError(self._redact(f"InfluxDB at {shown} answered HTTP {status}: {text}"))
        try:
            payload = json.loads(content)
        except ValueError:
            raise SourceError(f"InfluxDB at {shown} answered something that is not JSON") from None
        return MetricsView.from_points(
            points_from_response(payload), source=f"influxdb:{s.database}"
        )

    def close(self) -> None:
        self._client.close()
