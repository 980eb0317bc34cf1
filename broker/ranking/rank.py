"""Order candidate destinations by expected time to a successful result.

A destination is fresh when its site's cluster usage is younger than `metrics.staleness_s`.
Fresh destinations come first, by expected time (`broker.ranking.terms`; ties: TPV's order);
then stale ones in TPV's order; last the fresh ones whose pool can never hold the job. With no
fresh destination the broker cannot rank: the answer is the fallback order (the request's
`fallback_order`, else TPV's order) unchanged. Every candidate id is returned exactly once.

Where the job goes: in `enforce` mode to the answer's first candidate (chosen by the broker, or
by the fallback when the broker could not rank); in `shadow` mode to the fallback's first
(the broker's answer is only recorded). The in-flight ledger and the decision log record that
destination.
"""

from __future__ import annotations

import logging
import time

from broker.decisions.log import FALLBACK_STATE, RANKED, STALE, Decision
from broker.ranking.context import RankContext
from broker.ranking.explain import explain as explain_answer
from broker.ranking.explain import explained, log_decision
from broker.ranking.models import RankResponse
from broker.ranking.query import BROKER, FALLBACK, SHADOW, RankQuery
from broker.ranking.terms import CandidateTerms, score
from broker.ranking.wait import FRESH

log = logging.getLogger(__name__)


def positions(order: tuple[str, ...], ids: tuple[str, ...]) -> list[int]:
    """Each of `ids` as its position in `order` (a permutation of it)."""
    where = {d: i for i, d in enumerate(order)}
    return [where[d] for d in ids]


def _shadow_used(query: RankQuery) -> int:
    """The position of the fallback's first choice, where a shadow-mode job goes."""
    return 0 if query.fallback is None else query.order.index(query.fallback[0])


def rank(ctx: RankContext, query: RankQuery, explain: bool = False) -> RankResponse:
    """Order the candidates. With a ledger in `ctx`, the destination the job goes to is
    recorded as in flight to its site, so the next decisions before the site reports again see
    the slot as taken; with a decision log, the decision is counted and (with a job id) logged."""
    now = ctx.now()
    terms = score(ctx, query, now)
    order = terms.order()
    ranked = terms.waits.state[order[0]] == FRESH  # fresh candidates come first
    if not ranked and query.fallback is not None:
        order = positions(query.order, query.fallback)
    if query.mode == SHADOW:
        used, chosen_by = _shadow_used(query), FALLBACK
    else:
        used, chosen_by = order[0], BROKER if ranked else FALLBACK
    log_decision(terms, order, ctx.caller)
    candidates = terms.candidates.candidates
    if ctx.ledger is not None and terms.waits.state[used] == FRESH:
        job = query.job
        staging = terms.transfers.seconds[used]
        ctx.ledger.add(candidates[used].site, now, staging, job.cores, job.mem_mb, job.gpus)
    if ctx.decisions is not None:
        _record(ctx, query, RANKED if ranked else STALE, now, order, used, chosen_by, terms)
    ids = [candidates[i].id for i in order]
    if not explain:
        return RankResponse(sorted_destinations=ids)
    return explain_answer(ctx, terms, order, ids, now, fallback=query.fallback is not None)


def _record(
    ctx: RankContext,
    query: RankQuery,
    state: str,
    now: float,
    order: list[int],
    used: int,
    chosen_by: str,
    terms: CandidateTerms | None,
) -> None:
    """Count the decision; buffer it for the decision log when it has a job id. References to
    what the ranking built, nothing formatted: the writer does that off the request path."""
    decisions = ctx.decisions
    assert decisions is not None
    decision = None
    if decisions.enabled and query.job_id is not None:
        if terms is None:
            decision = Decision(
                now, query.job_id, query.job.tool_id, query.mode, chosen_by, used, order,
                query.order, None, None, None, None,
            )  # fmt: skip
        else:
            listed = terms.candidates
            decision = Decision(
                now, query.job_id, query.job.tool_id, query.mode, chosen_by, used, order,
                listed.ids, listed.pools, terms.transfers.seconds,
                terms.waits.seconds.tolist(), terms.estimates,
            )  # fmt: skip
    decisions.record(state, query.mode, decision)


def rank_or_fallback(ctx: RankContext, query: RankQuery, explain: bool = False) -> RankResponse:
    """`rank`, but a bug in it answers the fallback order (logged) instead of an HTTP 500: a
    valid request always gets a correct, if degraded, answer."""
    try:
        return rank(ctx, query, explain)
    except Exception:
        log.exception("ranking failed; answering the fallback order")
        order = list(query.fallback_order())
        if ctx.decisions is not None:  # both modes: the job goes to the fallback's first
            at = positions(query.order, tuple(order))
            _record(ctx, query, FALLBACK_STATE, time.time(), at, at[0], FALLBACK, None)
        if not explain:
            return RankResponse(sorted_destinations=order)
        summary = "internal ranking error (see the broker log): the fallback order unchanged"
        return explained(order, ctx, summary, [], degraded=True)
