"""Scoring one request: every candidate's transfer, wait, run time and chance of success.

    E[d] = (transfer(d) + wait(d) + run(d) + carbon(d)) / P_success(d) + preference(d)

preference(d) is `preference_level_s` per TPV score level below the best candidate's when the
request carries TPV's scores, else `preference_step_s` per position in TPV's order. carbon(d)
is the job's emissions priced in seconds (`broker.ranking.carbon`), computed only when the
administrator gives carbon a price.

Per request only lookups into the derived view and arithmetic; what explains a number is
worked out later, and only when asked (`broker.ranking.explain`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from broker.config import RankingSettings
from broker.ranking.carbon import kg_co2
from broker.ranking.context import RankContext
from broker.ranking.derived import CandidateList
from broker.ranking.history import ToolEstimate
from broker.ranking.query import Job, RankQuery
from broker.ranking.routed import RoutedLedger
from broker.ranking.transfer import Transfers
from broker.ranking.wait import FRESH, Sent, Waits, waits


@dataclass
class CandidateTerms:
    """Every candidate's terms, in TPV's order."""

    candidates: CandidateList
    job: Job
    transfers: Transfers
    waits: Waits
    sent: Sent | None  # what was routed to each candidate's site; None: nothing anywhere
    estimates: list[ToolEstimate]
    penalties: NDArray[np.float64]  # the preference term, seconds
    expected: NDArray[np.float64]
    carbon_kg: NDArray[np.float64] | None  # None: carbon has no price (`carbon_s_per_kg` 0)

    def order(self) -> list[int]:
        """Fresh by E (ties: TPV's order), then stale, then cannot-fit, each in TPV's order."""
        state = self.waits.state
        # by state, then (fresh only) by expectation; a stable sort: ties keep TPV's order
        by_expected = np.where(state == FRESH, self.expected, 0.0)
        return np.lexsort((by_expected, state)).tolist()


def _in_flight(ledger: RoutedLedger, listed: CandidateList, now: float) -> Sent | None:
    """What was routed to each candidate's site, None when nothing is; looked up once per
    site."""
    found = ledger.sums(listed.sites, now)
    if not any(jobs for jobs, *_ in found):
        return None
    return Sent(*np.array(found, dtype=np.float64)[listed.site_index].T)


def score(ctx: RankContext, query: RankQuery, now: float) -> CandidateTerms:
    settings, derived = ctx.settings, ctx.derived
    listed = derived.candidates(query.order, query.coords, settings)
    job = query.job
    terms = derived.history.terms(job.tool_id, listed.ids)
    sent = None if ctx.ledger is None else _in_flight(ctx.ledger, listed, now)
    staleness = settings.metrics.staleness_s
    wait = waits(settings.ranking, listed.columns, job, now, staleness, terms.queue_s, sent)
    transfers = Transfers.compute(
        derived.bandwidth, listed.candidates, query.inputs, listed.bandwidth_rows
    )
    penalties = preference_penalties(settings.ranking, query, len(wait))
    transfer_s = np.array(transfers.seconds, dtype=np.float64)
    cost = transfer_s + wait.seconds + terms.run_s
    rate = settings.ranking.carbon_s_per_kg
    carbon_kg = None
    if rate > 0:
        carbon_kg = kg_co2(listed.carbon, terms.run_s, job.cores, job.gpus)
        cost = cost + rate * carbon_kg
    expected = cost / terms.success + penalties
    return CandidateTerms(
        listed, job, transfers, wait, sent, terms.at, penalties, expected, carbon_kg
    )


def preference_penalties(ranking: RankingSettings, query: RankQuery, n: int) -> NDArray[np.float64]:
    """What each candidate's place in the administrator's preference costs, in seconds."""
    if query.levels is not None:
        return np.array(query.levels, dtype=np.float64) * ranking.preference_level_s
    return np.arange(n, dtype=np.float64) * ranking.preference_step_s
