"""The join of the attempt-outcomes collector: a job's state history split into attempts, and
each finished attempt as one `job_attempt_outcome` point at the destination its decision chose.

Pure functions of what the two ends return (Galaxy's rows, the decision log's destinations),
apart from the I/O in `collectors.attempt_outcomes` and `collectors.decision_log` so that the
rules below are tested without a database (tests/unit/test_collectors_attempt_outcomes.py).

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
- destination: the destination of the attempt's decision (the k-th decision of the job in
  time order is attempt k); the last attempt takes Galaxy's `job.destination_id`, which is
  authoritative for it. An attempt without a decision is skipped (one warning).
- timestamp: the attempt's end, so a rerun writes the same point (idempotent) and InfluxDB
  keeps one point per attempt.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from collectors.decision_log import Decision
from collectors.errors import warn
from metric_contract.lineprotocol import LineProtocolError, format_point
from metric_contract.measurements import (
    ATTEMPT,
    ATTEMPT_OUTCOMES,
    ATTEMPT_RESUBMITTED_STATE,
    DESTINATION_ID,
    JOB_ID,
    OK,
    QUEUE_S,
    RUN_S,
    STATE,
    TOOL_ID,
)

PROG = "attempt_outcomes"  # the collector's name in its warnings
# Galaxy job states after which an attempt does not change any more.
TERMINAL_STATES = ("ok", "error", "failed", "deleted", "stopped", "skipped")
RESUBMITTED = "resubmitted"
QUEUED = "queued"
RUNNING = "running"


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
            warn(PROG, f"skipped attempt {attempt.number} of job {job.id}: {exc}")
    return lines, missing
