"""Order candidate destinations by expected time to a successful result.

A destination is fresh when its site's cluster usage is younger than `metrics.staleness_s`.
Fresh destinations come first, by expected time (`broker.ranking.terms`; ties: TPV's order);
then stale ones in TPV's order; last the fresh ones whose pool can never hold the job. With no
fresh destination the answer is TPV's order unchanged. Every candidate id is returned exactly
once.
"""

from __future__ import annotations

import logging

from broker.ranking.context import RankContext
from broker.ranking.explain import explain as explain_answer
from broker.ranking.explain import explained, log_decision
from broker.ranking.models import RankResponse
from broker.ranking.query import RankQuery
from broker.ranking.terms import score
from broker.ranking.wait import FRESH

log = logging.getLogger(__name__)


def rank(ctx: RankContext, query: RankQuery, explain: bool = False) -> RankResponse:
    """Order the candidates. With a ledger in `ctx`, the first choice is recorded as in flight
    to its site, so the next decisions before the site reports again see the slot as taken."""
    now = ctx.now()
    terms = score(ctx, query, now)
    order = terms.order()
    log_decision(terms, order, ctx.caller)
    top = order[0]
    candidates = terms.candidates.candidates
    if ctx.ledger is not None and terms.waits[top].state == FRESH:
        job = query.job
        staging = terms.transfers.seconds[top]
        ctx.ledger.add(candidates[top].site, now, staging, job.cores, job.mem_mb, job.gpus)
    ids = [candidates[i].id for i in order]
    if not explain:
        return RankResponse(sorted_destinations=ids)
    return explain_answer(ctx, terms, order, ids, now)


def rank_or_fallback(ctx: RankContext, query: RankQuery, explain: bool = False) -> RankResponse:
    """`rank`, but a bug in it answers TPV's own order (logged) instead of an HTTP 500: a valid
    request always gets a correct, if degraded, answer."""
    try:
        return rank(ctx, query, explain)
    except Exception:
        log.exception("ranking failed; answering TPV's own order")
        order = list(query.order)
        if not explain:
            return RankResponse(sorted_destinations=order)
        summary = "internal ranking error (see the broker log): TPV's order unchanged"
        return explained(order, ctx, summary, [], degraded=True)
