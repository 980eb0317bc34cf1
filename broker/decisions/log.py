"""The request side of the decision log: a bounded in-memory buffer and the decision counts.

`record` is called once per routing decision, on the request path, so it does no I/O and no
formatting: it counts the decision (for /metrics) and, when the decision carries a job id and
the log is on, appends one `Decision` holding references to lists the ranking built anyway.
The writer (`broker.decisions.writer`) takes them from here and formats them off the request
path.

The buffer is bounded in candidates (a decision of n candidates counts n), not in decisions,
since a decision of 1000 candidates holds fifty times the memory of one of 20. When it is full
the OLDEST decisions are dropped and counted: the newest are those whose jobs are still queued
or running, so their outcomes are still to come, and after an outage the log resumes where
the jobs are. One lock guards buffer and counts (requests record from the event loop and from
worker threads); held for a few operations only.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

from broker.ranking.history import ToolEstimate
from broker.ranking.pool import Pool
from broker.ranking.query import ENFORCE, SHADOW

# What a decision's answer was (`tpv_broker_decisions_total{state=...}`):
RANKED = "ranked"  # by expected time: at least one candidate had current metrics
STALE = "stale"  # no candidate had current metrics: the fallback order answered
FALLBACK_STATE = "fallback"  # the ranking failed (a bug, logged): the fallback order answered
STATES = (RANKED, STALE, FALLBACK_STATE)
MODES = (ENFORCE, SHADOW)


class Decision(NamedTuple):
    """One decision as buffered; `lines` formats it. Positions index the candidates in TPV's
    order (`ids`); the prediction lists are None when the ranking failed."""

    time_s: float
    job_id: int
    tool_id: str | None
    mode: str
    chosen_by: str
    used: int  # position of the candidate the job was routed to
    order: Sequence[int]  # the broker's answer, as positions: order[0] is its first choice
    ids: Sequence[str]
    pools: Sequence[Pool] | None  # for the age of each candidate's cluster metrics
    transfer_s: Sequence[float] | None
    wait_s: Sequence[float] | None  # inf: the job can never fit there
    estimates: Sequence[ToolEstimate] | None  # run time and P(success)


class DecisionLog:
    """Counts every decision; buffers those with a job id when `max_points` is set (None: the
    log is off, decisions are only counted)."""

    def __init__(self, max_points: int | None):
        self.enabled = max_points is not None
        self.max_points = max_points or 0
        self._lock = threading.Lock()
        self._buffer: deque[Decision] = deque()
        self._points = 0  # candidate points in the buffer
        self.counts: dict[tuple[str, str], int] = {(s, m): 0 for s in STATES for m in MODES}
        self.buffered_total = 0  # decisions ever buffered
        self.dropped = 0  # decisions dropped: buffer full, or lost at shutdown

    def record(self, state: str, mode: str, decision: Decision | None) -> None:
        """Count one decision; buffer `decision` when given (the caller gives one only when the
        log is on and the request has a job id)."""
        with self._lock:
            self.counts[state, mode] += 1
            if decision is None:
                return
            size = len(decision.ids)
            if size > self.max_points:  # could never be kept: refused rather than the bound
                self.dropped += 1
                return
            buffer = self._buffer
            while buffer and self._points + size > self.max_points:
                self._points -= len(buffer.popleft().ids)
                self.dropped += 1
            buffer.append(decision)
            self._points += size
            self.buffered_total += 1

    def take(self, max_points: int) -> list[Decision]:
        """The oldest buffered decisions, up to `max_points` points (at least one decision)."""
        out: list[Decision] = []
        taken = 0
        with self._lock:
            buffer = self._buffer
            while buffer and (not out or taken + len(buffer[0].ids) <= max_points):
                decision = buffer.popleft()
                taken += len(decision.ids)
                out.append(decision)
            self._points -= taken
        return out

    def lost(self, decisions: int) -> None:
        """Decisions the writer had taken but could not write (shutdown with InfluxDB down)."""
        with self._lock:
            self.dropped += decisions

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def buffered_points(self) -> int:
        return self._points
