"""Read the metric contract from InfluxDB 1.x with InfluxQL over its HTTP API.

The 2.x client cannot talk to 1.x servers, and the 1.x `/query` endpoint is plain HTTP + JSON,
so httpx is all that is needed. One request carries one statement per measurement of the
contract (`metric_contract.measurements.SERIES_TAGS`), each asking for the newest point of every
series within the lookback window.
"""

from __future__ import annotations

from typing import Any

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


class InfluxSource:
    name = "influxdb"

    def __init__(self, settings: InfluxSettings, client: httpx.Client | None = None):
        self.settings = settings
        auth = (settings.username, settings.password or "") if settings.username else None
        self._client = client or httpx.Client(timeout=settings.timeout_s, auth=auth)

    def fetch(self) -> MetricsView:
        s = self.settings
        params = {"db": s.database, "q": latest_points_query(s.lookback_s), "epoch": "ns"}
        try:
            response = self._client.get(f"{s.url.rstrip('/')}/query", params=params)
        except httpx.TimeoutException:
            raise SourceError(
                f"InfluxDB at {s.url} did not answer within {s.timeout_s} s"
            ) from None
        except httpx.HTTPError as exc:
            raise SourceError(f"InfluxDB at {s.url} is unreachable: {exc}") from None
        if response.status_code != 200:
            raise SourceError(
                f"InfluxDB at {s.url} answered HTTP {response.status_code}: {response.text[:200]}"
            )
        try:
            payload = response.json()
        except ValueError:
            raise SourceError(f"InfluxDB at {s.url} answered something that is not JSON") from None
        return MetricsView.from_points(
            points_from_response(payload), source=f"influxdb:{s.database}"
        )

    def close(self) -> None:
        self._client.close()
