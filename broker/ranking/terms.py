"""Scoring one request: every candidate's transfer, wait, run time and chance of success.

    E[d] = (transfer(d) + wait(d) + run(d)) / P_success(d) + preference(d)

preference(d) is `preference_level_s` per TPV score level below the best candidate's when the
request carries TPV's scores, else `preference_step_s` per position in TPV's order.

Per request only lookups into the derived view and arithmetic; what explains a number is
worked out later, and only when asked (`broker.ranking.explain`).
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.config import RankingSettings
from broker.ranking.context import RankContext
from broker.ranking.derived import CandidateList
from broker.ranking.history import ToolEstimate
from broker.ranking.query import Job, RankQuery
from broker.ranking.routed import InFlight, RoutedLedger
from broker.ranking.transfer import Transfers
from broker.ranking.wait import Wait, waits


@dataclass
class CandidateTerms:
    """Every candidate's terms, in TPV's order."""

    candidates: CandidateList
    job: Job
    transfers: Transfers
    waits: list[Wait]
    flight: list[InFlight] | None  # what was routed to each candidate's site; None: nothing
    estimates: list[ToolEstimate]
    penalties: list[float]  # the preference term, seconds
    expected: list[float]

    def order(self) -> list[int]:
        """Fresh by E (ties: TPV's order), then stale, then cannot-fit, each in TPV's order."""
        by_state: tuple[list[int], ...] = ([], [], [])  # FRESH, STALE, CANNOT_FIT
        for i, w in enumerate(self.waits):
            by_state[w.state].append(i)
        fresh, stale, cannot_fit = by_state
        # sorted() is stable: equal expectations keep TPV's order.
        return sorted(fresh, key=self.expected.__getitem__) + stale + cannot_fit


def _in_flight(ledger: RoutedLedger, listed: CandidateList, now: float) -> list[InFlight] | None:
    """What was routed to each candidate's site, None when nothing is. Looked up once per site:
    TPV's candidates are often several queues of one pool, and they share its in-flight jobs."""
    by_site: dict[str, InFlight] = {}
    for c in listed.candidates:
        if c.site not in by_site:
            by_site[c.site] = ledger.in_flight(c.site, c.pool.time_s, now)
    if not any(f.jobs for f in by_site.values()):
        return None
    return [by_site[c.site] for c in listed.candidates]


def score(ctx: RankContext, query: RankQuery, now: float) -> CandidateTerms:
    settings, derived = ctx.settings, ctx.derived
    listed = derived.candidates(query.order, query.coords, settings)
    job = query.job
    terms = derived.history.terms(job.tool_id, listed.ids)
    flight = None if ctx.ledger is None else _in_flight(ctx.ledger, listed, now)
    wait = waits(
        settings.ranking,
        listed.pools,
        job,
        now,
        settings.metrics.staleness_s,
        terms.queue_s,
        flight,
    )
    transfers = Transfers.compute(
        derived.bandwidth, listed.candidates, query.inputs, listed.bandwidth_rows
    )
    penalties = preference_penalties(settings.ranking, query, len(wait))
    expected = [
        (t + w.seconds + r) / p + pen
        for t, w, r, p, pen in zip(
            transfers.seconds, wait, terms.run_s, terms.success, penalties, strict=True
        )
    ]
    return CandidateTerms(listed, job, transfers, wait, flight, terms.at, penalties, expected)


def preference_penalties(ranking: RankingSettings, query: RankQuery, n: int) -> list[float]:
    """What each candidate's place in the administrator's preference costs, in seconds."""
    if query.levels is not None:
        step = ranking.preference_level_s
        return [level * step for level in query.levels]
    step = ranking.preference_step_s
    return [i * step for i in range(n)]
