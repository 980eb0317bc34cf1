"""Read the metric contract from InfluxDB with InfluxQL over its v1 HTTP API `/query`.

InfluxDB 1.x serves it natively, 2.x and 3.x as their v1-compatible API (docs/deployment.md,
"InfluxDB versions"): the same GET with `db`, `q` and `epoch`, authenticated by a token
(`Authorization: Token ...`, 2.x/3.x) or a user and password (basic auth). The 2.x client
cannot talk to 1.x servers, and `/query` is plain HTTP + JSON, so httpx is all that is needed.
One request carries one statement per measurement of the contract
(`metric_contract.measurements.SERIES_TAGS`), each asking for the newest point of every series
within that measurement's lookback window, plus three for the shapes ansible-pulsar-util writes
into `htcondor_cluster_usage` and `pulsar_carbon_intensity` (`broker.metrics.pulsar_util`),
plus the per-attempt outcomes
counted per destination, tool and state over their own window (`attempt_outcome_statements`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import httpx

import metric_contract.pulsar_util as pu
from broker.config import InfluxSettings, MetricsSettings
from broker.metrics.view import MetricsView, SourceError
from metric_contract.lineprotocol import Point
from metric_contract.measurements import (
    ATTEMPT_OUTCOMES,
    ATTEMPT_TAGS,
    CARBON,
    CARBON_INTENSITY,
    CLUSTER,
    COUNT,
    JOB_ID,
    SERIES_TAGS,
    SITE,
)

# Rows of pulsar-util's totals (and carbon) lines read per refresh: all sites share one series
# (the site is a field), so the newest per site is picked from the newest rows: at one line per
# site a minute, 1000 rows reach back over 16 hours for 60 sites, far past any staleness window.
PULSAR_UTIL_TOTALS_ROWS = 1000
# this suite's own shape of these carries a `site` tag; pulsar-util's none
_SITE_TAGGED = (CLUSTER, CARBON)


def _select(fields: tuple[str, ...]) -> str:
    return ", ".join(f'"{f}"' for f in fields)


def latest_points_query(lookback_s: float, lookbacks_s: Mapping[str, float] | None = None) -> str:
    """InfluxQL for the newest point per series of every contract measurement, each looking
    back `lookbacks_s[measurement]`, else `lookback_s`, and for the newest reports in
    ansible-pulsar-util's three shapes (which have no `site` tag; they look back as far as the
    measurement they are in)."""
    lookbacks = lookbacks_s or {}
    statements = []
    for measurement, tags in SERIES_TAGS.items():
        group = ", ".join(f'"{t}"' for t in tags)
        lookback = lookbacks.get(measurement, lookback_s)
        only_own = f"\"{SITE}\" != '' AND " if measurement in _SITE_TAGGED else ""
        statements.append(
            f'SELECT * FROM "{measurement}" WHERE {only_own}time > now() - {int(lookback)}s '
            f"GROUP BY {group} ORDER BY time DESC LIMIT 1"
        )
    since = f"time > now() - {int(lookbacks.get(CLUSTER, lookback_s))}s"
    # the histogram: one series per site and slot shape (`destination_id` is a tag there)
    statements.append(
        f'SELECT {_select((*pu.HISTOGRAM_FIELDS, pu.DESTINATION_STATUS))} FROM "{CLUSTER}" '
        f"WHERE \"{pu.UNCLAIMED_TAG}\" != '' AND {since} "
        f'GROUP BY "{pu.DESTINATION_ID}", "{pu.UNCLAIMED_TAG}" ORDER BY time DESC LIMIT 1'
    )
    # the totals: neither tag, `destination_id` a string field
    totals = (*pu.TOTALS_FIELDS, pu.DESTINATION_STATUS)
    statements.append(
        f'SELECT {_select(totals)}, "{pu.DESTINATION_ID}"::field FROM "{CLUSTER}" '
        f"WHERE \"{SITE}\" = '' AND \"{pu.UNCLAIMED_TAG}\" = '' AND {since} "
        f"ORDER BY time DESC LIMIT {PULSAR_UTIL_TOTALS_ROWS}"
    )
    # the carbon intensity: no tag, `destination_id` a string field, as the totals
    carbon_since = f"time > now() - {int(lookbacks.get(CARBON, lookback_s))}s"
    statements.append(
        f'SELECT "{CARBON_INTENSITY}", "{pu.DESTINATION_ID}"::field FROM "{CARBON}" '
        f"WHERE \"{SITE}\" = '' AND {carbon_since} "
        f"ORDER BY time DESC LIMIT {PULSAR_UTIL_TOTALS_ROWS}"
    )
    return "; ".join(statements)


def attempt_outcome_statements(window_s: float) -> str:
    """Per destination, tool and state: how many attempts ended in the window (`count`), and
    the newest one (`last`, for its time: an aggregate row carries the window's start)."""
    group = ", ".join(f'"{t}"' for t in ATTEMPT_TAGS)
    where = f"WHERE time > now() - {int(window_s)}s GROUP BY {group}"
    return (
        f'SELECT count("{JOB_ID}") AS "{COUNT}" FROM "{ATTEMPT_OUTCOMES}" {where}; '
        f'SELECT last("{JOB_ID}") AS "last" FROM "{ATTEMPT_OUTCOMES}" {where}'
    )


def attempt_counts(points: list[Point]) -> list[Point]:
    """Merge the two attempt statements' rows into one point per series: `count` attempts,
    stamped with the newest attempt's time (what `MetricsView` reads as an aggregate)."""
    newest: dict[tuple, int] = {}
    counts: list[Point] = []
    others: list[Point] = []
    for p in points:
        if p.measurement != ATTEMPT_OUTCOMES:
            others.append(p)
        elif "last" in p.fields:
            newest[tuple(sorted(p.tags.items()))] = p.time_ns or 0
        elif COUNT in p.fields:
            counts.append(p)
    merged = [
        Point(p.measurement, p.tags, p.fields, newest.get(tuple(sorted(p.tags.items())), p.time_ns))
        for p in counts
    ]
    return others + merged


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


class _TooLarge(Exception):
    """An answer past the caller's `max_bytes`."""


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
    """Where an InfluxDB is and how to log in (the metric source reads it, the decision log
    writes to it): `base_url` without credentials; `headers` with `Authorization: Token ...`
    when a token is set (2.x/3.x), else `auth` for basic auth (`username`/`password` in the
    settings win over the URL's); `shown_url` and `redact` for errors and the log."""

    def __init__(self, settings: InfluxSettings):
        self.settings = settings
        parts = urlsplit(settings.url)
        # `username`/`password` in the settings win over the URL's
        self.auth: tuple[str, str] | None = None
        if settings.username:
            self.auth = (settings.username, settings.password or "")
        elif parts.username is not None:
            self.auth = (unquote(parts.username), unquote(parts.password or ""))
        self.headers = {"Authorization": f"Token {settings.token}"} if settings.token else {}
        if settings.token:
            self.auth = None  # one scheme per request: the token
        self.shown_url = redact_url(settings.url)
        self.base_url = self.shown_url.replace("***@", "", 1).rstrip("/")
        self._secrets = [
            x
            for x in (settings.url, settings.password, parts.password, settings.token)
            if x and len(x) >= 3
        ]

    def redact(self, text: str) -> str:
        """`text` with the URL's credentials, the password and the token replaced."""
        for secret in self._secrets:
            text = text.replace(secret, self.shown_url if secret == self.settings.url else "***")
        return text


class InfluxSource(InfluxConnection):
    """One refresh is one GET of /query under one deadline, `timeout_s`, for the whole exchange
    (connecting, sending, waiting and reading the answer): a server that trickles its answer is
    cut off at the deadline, not only when one read stalls. The exchange runs on an event loop
    of its own, so the deadline cancels it wherever it is. A token is sent as
    `Authorization: Token <token>`, a user and password (in the settings or the URL) as basic
    auth; neither appears in an error, the URL requested or the log."""

    name = "influxdb"

    def __init__(self, settings: InfluxSettings, lookbacks_s: Mapping[str, float] | None = None):
        """`lookbacks_s`: per measurement, instead of `settings.lookbacks_s` (`of` passes the
        config's, with its carbon default)."""
        super().__init__(settings)
        self.lookbacks_s = settings.lookbacks_s if lookbacks_s is None else lookbacks_s

    @classmethod
    def of(cls, metrics: MetricsSettings) -> InfluxSource:
        """The source a config's metrics section describes."""
        return cls(metrics.influxdb, metrics.lookbacks_s())

    async def _exchange(
        self, query: str, timeout_s: float, max_bytes: int | None
    ) -> tuple[int, bytes]:
        s = self.settings
        params = {"db": s.database, "q": query, "epoch": "ns"}
        with anyio.fail_after(timeout_s):
            async with httpx.AsyncClient(
                timeout=timeout_s, auth=self.auth, headers=self.headers
            ) as client:
                if max_bytes is None:
                    response = await client.get(f"{self.base_url}/query", params=params)
                    return response.status_code, response.content
                async with client.stream("GET", f"{self.base_url}/query", params=params) as r:
                    body = bytearray()
                    async for chunk in r.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise _TooLarge
                    return r.status_code, bytes(body)

    def _run_exchange(
        self, query: str, timeout_s: float, max_bytes: int | None = None
    ) -> tuple[int, bytes]:
        def exchange() -> tuple[int, bytes]:
            return anyio.run(self._exchange, query, timeout_s, max_bytes)

        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the refresh thread: no loop here
            return exchange()
        # called from a running loop (the app's start-up refresh): a thread of its own
        with ThreadPoolExecutor(1, thread_name_prefix="influx-fetch") as pool:
            return pool.submit(exchange).result()

    def fetch(self) -> MetricsView:
        s = self.settings
        query = (
            latest_points_query(s.lookback_s, self.lookbacks_s)
            + "; "
            + attempt_outcome_statements(s.attempt_window_s)
        )
        points = attempt_counts(self.query(query))
        return MetricsView.from_points(points, source=f"influxdb:{s.database}")

    def query(
        self, statements: str, timeout_s: float | None = None, max_bytes: int | None = None
    ) -> list[Point]:
        """Run InfluxQL `statements` (one GET of /query under one deadline, the settings'
        `timeout_s` unless given; an answer longer than `max_bytes` is cut off) and return
        every row as a point; SourceError says why not."""
        s = self.settings
        shown = self.shown_url
        deadline = s.timeout_s if timeout_s is None else timeout_s
        try:
            status, content = self._run_exchange(statements, deadline, max_bytes)
        except _TooLarge:
            raise SourceError(
                f"InfluxDB at {shown} answered more than {max_bytes} bytes: ask for less"
            ) from None
        except (TimeoutError, httpx.TimeoutException):
            raise SourceError(f"InfluxDB at {shown} did not answer within {deadline} s") from None
        except httpx.HTTPError as exc:
            raise SourceError(self.redact(f"InfluxDB at {shown} is unreachable: {exc}")) from None
        if status != 200:
            text = content[:200].decode("utf-8", "replace")
            raise SourceError(self.redact(f"InfluxDB at {shown} answered HTTP {status}: {text}"))
        try:
            payload = json.loads(content)
        except ValueError:
            raise SourceError(f"InfluxDB at {shown} answered something that is not JSON") from None
        return points_from_response(payload)

    def close(self) -> None:
        """Nothing to release: each refresh opens and closes its own connection."""
