"""Galaxy server: each finished attempt of the jobs the broker decided on, with its actual queue
wait, run time and final state, as `job_attempt_outcome` line protocol for Telegraf's exec input.

    python -m collectors.attempt_outcomes [--dsn "dbname=galaxy"] [--influx-url URL]
        [--influx-database galaxy] [--decision-window-hours 168]

Why a join: Galaxy keeps only a job's last destination (`job.destination_id`); the broker's
decision log (`routing_decision` in InfluxDB) says where each earlier attempt went. Galaxy's
`job_state_history` says when each attempt queued, ran and ended, and `job_metric_numeric` how
long the final attempt's tool ran. docs/collectors.md has the rules in prose.

How a resubmission shows in Galaxy's database (read from Galaxy's model and job runner code):
`Job.set_state` appends a `job_state_history` row for every state change. When a destination's
`resubmit:` condition catches a failed attempt, the runner's resubmit handler sets the job's
state to `resubmitted` (a history row), points the job at the new destination and the handler
dispatches it again: `queued`, `running`, ... follow. Galaxy itself counts the attempt as
1 + the number of `resubmitted` rows (the `attempt` variable of resubmit conditions); this
collector uses the same rule. So attempt k runs from the (k-1)-th `resubmitted` row (the job's
creation for k = 1) to the k-th `resubmitted` row, or, for the last attempt, to the row of the
job's terminal state. A resubmitted attempt counts as failed (`state=error`, `ok=false`).

Per attempt:
- `queue_s`: first `queued` row of the attempt to its first `running` row (to its end when it
  never ran); the attempt's start when it has no `queued` row.
- `run_s`: for the last attempt, Galaxy's `core` job metric `runtime_seconds` when recorded
  (the tool's own run in its slot); otherwise, and for every resubmitted attempt (Galaxy
  collects metrics only when a job finishes, so those have none), first `running` row to the
  attempt's end; 0 when it never ran.
- destination: the used candidate of the attempt's decision (the k-th decision of the job in
  time order is attempt k); the last attempt takes Galaxy's `job.destination_id`, which is
  authoritative for it. An attempt without a decision is skipped (one warning).
- timestamp: the attempt's end, so a rerun writes the same point (idempotent) and InfluxDB
  keeps one point per attempt.

Only jobs created inside the decision window are joined: for them every decision is in the
window, so the numbering of attempts is exact. The window must be longer than the longest
job lifetime (default 7 days). Unfinished attempts are written once they end.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from collectors.errors import EXIT_CONFIG, EXIT_UNAVAILABLE, CollectorError, emit, run_cli
from collectors.galaxy_db import galaxy_cursor
from collectors.settings import (
    CollectorSettings,
    add_config_argument,
    load_settings,
    overrides_from,
    redact,
)
from metric_contract.lineprotocol import LineProtocolError, format_point
from metric_contract.measurements import (
    ATTEMPT,
    ATTEMPT_OUTCOMES,
    ATTEMPT_RESUBMITTED_STATE,
    DECISION,
    DECISIONS,
    DESTINATION_ID,
    JOB_ID,
    OK,
    QUEUE_S,
    RUN_S,
    STATE,
    TOOL_ID,
)

# Galaxy job states after which an attempt does not change any more.
TERMINAL_STATES = ("ok", "error", "failed", "deleted", "stopped", "skipped")
RESUBMITTED = "resubmitted"
QUEUED = "queued"
RUNNING = "running"
# The largest /query answer read (a week of decisions of a big server is tens of MB).
MAX_RESPONSE_BYTES = 256 * 1024 * 1024


def _warn(message: str) -> None:
    print(f"attempt_outcomes: warning: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Decision:
    """The used candidate of one routing decision."""

    time_ns: int
    decision: str
    destination_id: str


@dataclass(frozen=True)
class Job:
    id: int
    tool_id: str
    destination_id: str | None
    state: str
    create_time: datetime
    update_time: datetime | None


@dataclass(frozen=True)
class Attempt:
    """One attempt as Galaxy recorded it; `end` is None while it has not finished."""

    number: int  # 1-based
    queue_s: float
    run_s: float
    state: str | None
    end: datetime | None


def _ns(dt: datetime) -> int:
    """Galaxy's naive-UTC timestamp -> ns since the epoch, exactly (no float rounding)."""
    return calendar.timegm(dt.utctimetuple()) * 1_000_000_000 + dt.microsecond * 1000


def _seconds(a: datetime, b: datetime) -> float:
    return max(0.0, (b - a).total_seconds())


def attempts_of(
    job: Job, history: Sequence[tuple[str, datetime]], runtime_s: float | None
) -> list[Attempt]:
    """Split a job's state history (in time order) into attempts at its `resubmitted` rows."""
    segments: list[tuple[datetime, list[tuple[str, datetime]], datetime | None]] = []
    start: datetime = job.create_time
    rows: list[tuple[str, datetime]] = []
    for row_state, at in history:
        if row_state == RESUBMITTED:
            segments.append((start, rows, at))
            start, rows = at, []
        else:
            rows.append((row_state, at))
    segments.append((start, rows, None))
    out = []
    for number, (begin, seg, resubmitted_at) in enumerate(segments, start=1):
        last = number == len(segments)
        if not last:
            end: datetime | None = resubmitted_at
            state: str | None = ATTEMPT_RESUBMITTED_STATE
        elif job.state in TERMINAL_STATES:
            state = job.state
            end = next((at for s, at in seg if s == job.state), None)
            end = end or next((at for s, at in seg if s in TERMINAL_STATES), None)
            end = end or job.update_time or (seg[-1][1] if seg else begin)
        else:
            end, state = None, None
        queued = next((at for s, at in seg if s == QUEUED), begin)
        running = next((at for s, at in seg if s == RUNNING), None)
        if end is None:
            out.append(Attempt(number, 0.0, 0.0, None, None))
            continue
        queue_s = _seconds(queued, running or end)
        if last and runtime_s is not None:
            run_s = max(0.0, float(runtime_s))
        else:
            run_s = _seconds(running, end) if running is not None else 0.0
        out.append(Attempt(number, queue_s, run_s, state, end))
    return out


def outcome_lines(
    job: Job, attempts: Sequence[Attempt], decisions: Sequence[Decision]
) -> tuple[list[str], int]:
    """The finished attempts of one job as line protocol, and how many lacked a decision."""
    ordered = sorted(decisions, key=lambda d: (d.time_ns, d.decision))
    lines, missing = [], 0
    for attempt in attempts:
        if attempt.end is None or attempt.state is None:
            continue
        if attempt.number > len(ordered):
            missing += 1
            continue
        destination = ordered[attempt.number - 1].destination_id
        if attempt.number == len(attempts) and job.destination_id:
            destination = job.destination_id
        try:
            lines.append(
                format_point(
                    ATTEMPT_OUTCOMES,
                    {DESTINATION_ID: destination, TOOL_ID: job.tool_id, STATE: attempt.state},
                    {
                        JOB_ID: job.id,
                        ATTEMPT: attempt.number,
                        QUEUE_S: float(attempt.queue_s),
                        RUN_S: float(attempt.run_s),
                        OK: attempt.state == "ok",
                    },
                    _ns(attempt.end),
                )
            )
        except LineProtocolError as exc:
            _warn(f"skipped attempt {attempt.number} of job {job.id}: {exc}")
    return lines, missing


# --- the decision log (InfluxDB 1.x /query; stdlib only, a Galaxy server needs no httpx) ---


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


# --- Galaxy's database ---

JOBS_SQL = """
SELECT id, tool_id, destination_id, state, create_time, update_time
  FROM job
 WHERE id = ANY(%(ids)s)
   AND tool_id IS NOT NULL AND tool_id <> ''
   AND create_time > (now() AT TIME ZONE 'UTC') - %(hours)s * interval '1 hour'
"""
HISTORY_SQL = """
SELECT job_id, state, create_time
  FROM job_state_history
 WHERE job_id = ANY(%(ids)s) AND create_time IS NOT NULL
 ORDER BY job_id, create_time, id
"""
RUNTIME_SQL = """
SELECT job_id, metric_value
  FROM job_metric_numeric
 WHERE job_id = ANY(%(ids)s) AND plugin = 'core' AND metric_name = 'runtime_seconds'
"""


@dataclass
class GalaxyRecord:
    jobs: list[Job]
    history: dict[int, list[tuple[str, datetime]]]
    runtime_s: dict[int, float]


def fetch_galaxy(
    dsn: str, job_ids: Iterable[int], window_hours: float, timeout_s: float = 10.0
) -> GalaxyRecord:
    params = {"ids": sorted(set(job_ids)), "hours": float(window_hours)}
    with galaxy_cursor(dsn, timeout_s) as cur:
        cur.execute(JOBS_SQL, params)
        jobs = [Job(*row) for row in cur.fetchall()]
        params["ids"] = [job.id for job in jobs]
        cur.execute(HISTORY_SQL, params)
        history: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
        for job_id, state, at in cur.fetchall():
            history[job_id].append((state or "", at))
        cur.execute(RUNTIME_SQL, params)
        runtime_s = {job_id: float(v) for job_id, v in cur.fetchall() if v is not None}
    return GalaxyRecord(jobs, dict(history), runtime_s)


def collect(settings: CollectorSettings) -> list[str]:
    decisions = read_decisions(settings)
    if not decisions:
        return []
    record = fetch_galaxy(
        settings.postgres_dsn, decisions, settings.decision_window_hours, settings.timeout_s
    )
    lines, missing = [], 0
    for job in sorted(record.jobs, key=lambda j: j.id):
        attempts = attempts_of(job, record.history.get(job.id, []), record.runtime_s.get(job.id))
        job_lines, job_missing = outcome_lines(job, attempts, decisions[job.id])
        lines += job_lines
        missing += job_missing
    if missing:
        _warn(f"{missing} finished attempts have no decision in the window and were skipped")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="attempt_outcomes",
        description="Print each finished attempt of the broker's jobs (Telegraf exec).",
    )
    add_config_argument(p)
    p.add_argument("--dsn", dest="postgres_dsn", help="libpq conninfo or postgresql:// URI")
    p.add_argument("--influx-url", help="InfluxDB 1.x base URL holding the decision log")
    p.add_argument("--influx-database", help="its database (default galaxy)")
    p.add_argument("--influx-username", help="InfluxDB user (password: file or environment)")
    p.add_argument(
        "--decision-window-hours", type=float, help="join jobs created this recently (168)"
    )
    p.add_argument("--timeout", type=float, dest="timeout_s", help="seconds per network step")
    return p


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = overrides_from(args)

    def run() -> int:
        settings = load_settings(args.config, overrides=overrides)
        return emit(collect(settings), out)

    return run_cli("attempt_outcomes", run)


if __name__ == "__main__":
    sys.exit(main())
