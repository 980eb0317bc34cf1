"""Read the decision log and the attempt outcomes from InfluxDB and join them per attempt.

The join rule is the collector's (collectors/attempts.py): the decisions of a job in
time order are its attempts 1, 2, ...; so attempt k's outcome meets the job's k-th decision.
Decisions are read from `margin_s` further back than the outcomes, so a job whose first
attempt began before the window still has its earlier decisions counted.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import metric_contract.measurements as mc
from broker.metrics.influx import InfluxSource
from metric_contract.decision_points import candidates_of
from metric_contract.lineprotocol import Point


@dataclass(frozen=True)
class Candidate:
    destination_id: str
    broker_rank: int
    used: bool
    transfer_s: float
    wait_s: float
    run_s: float
    p_success: float
    metric_age_s: float | None

    @property
    def total_s(self) -> float:
        return self.transfer_s + self.wait_s + self.run_s


@dataclass
class Decision:
    id: str
    time_ns: int
    job_id: int
    tool_id: str
    mode: str
    chosen_by: str
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def first_choice(self) -> Candidate | None:
        return min(self.candidates, key=lambda c: c.broker_rank, default=None)

    @property
    def used(self) -> Candidate | None:
        return next((c for c in self.candidates if c.used), None)

    def at(self, destination_id: str) -> Candidate | None:
        return next((c for c in self.candidates if c.destination_id == destination_id), None)


@dataclass(frozen=True)
class Outcome:
    job_id: int
    attempt: int
    destination_id: str
    tool_id: str
    state: str
    queue_s: float
    run_s: float
    ok: bool
    time_ns: int

    @property
    def total_s(self) -> float:
        return self.queue_s + self.run_s


@dataclass(frozen=True)
class Pair:
    """One finished attempt with the decision that routed it and that decision's candidate
    at the destination the attempt ran at (None when it was not a candidate)."""

    outcome: Outcome
    decision: Decision
    candidate: Candidate | None

    @property
    def broker_choice_used(self) -> bool:
        first = self.decision.first_choice
        return first is not None and first.destination_id == self.outcome.destination_id


def _float(value: object, default: float = math.nan) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def decisions_from(points: Iterable[Point]) -> list[Decision]:
    """routing_decision points -> decisions with their candidates (one point per decision,
    `metric_contract.decision_points`); points missing the identifying fields are skipped."""
    out = []
    for p in points:
        f, t = p.fields, p.tags
        job_id, decision_id, used = (
            _int(f.get(mc.JOB_ID)),
            f.get(mc.DECISION),
            t.get(mc.DESTINATION_ID),
        )
        if job_id is None or not isinstance(decision_id, str) or not used:
            continue
        decision = Decision(
            decision_id,
            p.time_ns or 0,
            job_id,
            t.get(mc.TOOL_ID, ""),
            t.get(mc.MODE, ""),
            t.get(mc.CHOSEN_BY, ""),
        )
        for c in candidates_of(f, p.time_ns):
            if c.broker_rank is None:
                continue
            decision.candidates.append(
                Candidate(
                    c.destination_id,
                    c.broker_rank,
                    c.destination_id == used,
                    0.0 if math.isnan(c.transfer_s) else c.transfer_s,
                    c.wait_s,
                    c.run_s,
                    c.p_success,
                    None if math.isnan(c.metric_age_s) else c.metric_age_s,
                )
            )
        out.append(decision)
    return sorted(out, key=lambda d: (d.time_ns, d.id))


def outcomes_from(points: Iterable[Point]) -> list[Outcome]:
    out = []
    for p in points:
        f, t = p.fields, p.tags
        job_id, attempt = _int(f.get(mc.JOB_ID)), _int(f.get(mc.ATTEMPT))
        dest = t.get(mc.DESTINATION_ID)
        if job_id is None or attempt is None or attempt < 1 or not dest:
            continue
        out.append(
            Outcome(
                job_id,
                attempt,
                dest,
                t.get(mc.TOOL_ID, ""),
                t.get(mc.STATE, ""),
                _float(f.get(mc.QUEUE_S)),
                _float(f.get(mc.RUN_S)),
                f.get(mc.OK) is True,
                p.time_ns or 0,
            )
        )
    return sorted(out, key=lambda o: (o.job_id, o.attempt))


def join(decisions: list[Decision], outcomes: list[Outcome]) -> tuple[list[Pair], int]:
    """Pairs of (outcome, its decision); and how many outcomes had no decision."""
    by_job: dict[int, list[Decision]] = defaultdict(list)
    for d in decisions:  # already in time order
        by_job[d.job_id].append(d)
    pairs, unmatched = [], 0
    for o in outcomes:
        job_decisions = by_job.get(o.job_id, [])
        if o.attempt > len(job_decisions):
            unmatched += 1
            continue
        decision = job_decisions[o.attempt - 1]
        pairs.append(Pair(o, decision, decision.at(o.destination_id)))
    return pairs, unmatched


@dataclass
class Log:
    decisions: list[Decision]  # in the window and the margin before it
    outcomes: list[Outcome]
    window_start_ns: int


def read_log(
    source: InfluxSource, since_s: float, margin_s: float, timeout_s: float, max_bytes: int
) -> Log:
    """Both measurements in one /query exchange, bounded in time and size; SourceError when
    InfluxDB cannot answer."""
    query = (
        f'SELECT * FROM "{mc.DECISIONS}" WHERE time > now() - {int(since_s + margin_s)}s '
        f"GROUP BY *; "
        f'SELECT * FROM "{mc.ATTEMPT_OUTCOMES}" WHERE time > now() - {int(since_s)}s GROUP BY *'
    )
    points = source.query(query, timeout_s=timeout_s, max_bytes=max_bytes)
    decisions = decisions_from(p for p in points if p.measurement == mc.DECISIONS)
    outcomes = outcomes_from(p for p in points if p.measurement == mc.ATTEMPT_OUTCOMES)
    return Log(decisions, outcomes, time.time_ns() - int(since_s * 1e9))
