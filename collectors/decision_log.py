"""The broker's decision log as the attempt-outcomes collector reads it: the destination each
routing decision of the last `decision_window_hours` sent its job to (the point's tag), by job id.

InfluxDB 1.x `/query` over the standard library (urllib), because a Galaxy server needs no
httpx for its collectors; apart from the join (`collectors.attempts`) so that the join is tested
on plain values and this on InfluxDB's answers.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from collectors.errors import EXIT_CONFIG, EXIT_UNAVAILABLE, CollectorError
from collectors.settings import CollectorSettings, redact
from metric_contract.measurements import DECISION, DECISIONS, DESTINATION_ID, JOB_ID

# The largest /query answer read (a week of decisions of a big server is tens of MB).
MAX_RESPONSE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Decision:
    """The destination one routing decision sent its job to."""

    time_ns: int
    decision: str
    destination_id: str


def decisions_query(window_hours: float) -> str:
    return (
        f'SELECT "{JOB_ID}", "{DECISION}", "{DESTINATION_ID}" FROM "{DECISIONS}" '
        f"WHERE time > now() - {int(window_hours * 3600)}s"
    )


def parse_decisions(payload: Any) -> dict[int, list[Decision]]:
    """A /query answer (epoch=ns) -> each decision's destination by job id; malformed rows
    skipped."""
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise CollectorError("InfluxDB answered without a 'results' list")
    by_job: dict[int, dict[str, Decision]] = defaultdict(dict)
    for result in payload["results"]:
        if not isinstance(result, dict):
            raise CollectorError("InfluxDB answered a malformed result")
        if "error" in result:
            raise CollectorError(f"InfluxDB query error: {result['error']}", EXIT_CONFIG)
        for series in result.get("series") or []:
            columns = series.get("columns") or []
            for row in series.get("values") or []:
                record = dict(zip(columns, row, strict=False))
                job_id, decision = record.get(JOB_ID), record.get(DECISION)
                destination, time_ns = record.get(DESTINATION_ID), record.get("time")
                if not (
                    isinstance(job_id, int)
                    and isinstance(time_ns, int)
                    and isinstance(decision, str)
                    and isinstance(destination, str)
                    and destination
                ):
                    continue
                # one point per decision; should a retried write repeat it, the first is kept
                by_job[job_id].setdefault(decision, Decision(time_ns, decision, destination))
    return {job: list(decisions.values()) for job, decisions in by_job.items()}


def read_decisions(settings: CollectorSettings) -> dict[int, list[Decision]]:
    shown = redact(settings.influx_url)
    params = {
        "db": settings.influx_database,
        "q": decisions_query(settings.decision_window_hours),
        "epoch": "ns",
    }
    url = settings.influx_url.rstrip("/") + "/query?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url)
    if settings.influx_username:
        token = f"{settings.influx_username}:{settings.influx_password or ''}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout_s) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        text = exc.read(200).decode("utf-8", "replace").strip()
        code = EXIT_CONFIG if exc.code in (400, 401, 403, 404) else EXIT_UNAVAILABLE
        message = f"InfluxDB at {shown} answered HTTP {exc.code}: {text}"
        raise CollectorError(message, code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CollectorError(f"InfluxDB at {shown} is unreachable: {reason}") from None
    except ValueError as exc:  # a malformed URL
        raise CollectorError(f"influx_url {shown!r} is not usable: {exc}", EXIT_CONFIG) from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise CollectorError(
            f"InfluxDB at {shown} answered more than {MAX_RESPONSE_BYTES} bytes of decisions: "
            "shorten decision_window_hours",
            EXIT_CONFIG,
        )
    try:
        payload = json.loads(body)
    except ValueError:
        raise CollectorError(f"InfluxDB at {shown} answered something that is not JSON") from None
    return parse_decisions(payload)
