"""Why the ranking answered what it did: the explanation (`?explain=true`) and the log line.

Built only when asked, from the terms a request was scored with (`CandidateTerms`), so the
hot path never formats text.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from broker.metrics.cache import RefreshStatus
from broker.ranking.carbon import kg_co2
from broker.ranking.context import RankContext
from broker.ranking.history import Estimate
from broker.ranking.models import DestinationExplanation, Explanation, MetricAges, RankResponse
from broker.ranking.routed import NOTHING
from broker.ranking.terms import CandidateTerms
from broker.ranking.transfer import Transfer
from broker.ranking.wait import FRESH, STATE_NAMES, wait_note

log = logging.getLogger(__name__)


def _age(now: float, t: float | None) -> float | None:
    return None if t is None else round(max(0.0, now - t), 1)


def _fmt_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(slots=True)
class ExplainedCandidate:
    """One candidate's terms with the text that says where each came from."""

    id: str
    position: int
    site: str
    state: str  # fresh | stale | cannot_fit
    transfer: Transfer
    wait_s: float
    wait_note: str
    run: Estimate
    success: Estimate
    penalty: float
    expected: float
    cluster_age: float | None
    carbon_kg: float
    carbon_s: float
    carbon_note: str


def _carbon_kg(terms: CandidateTerms) -> NDArray[np.float64]:
    """Every candidate's kg CO2eq: the ranking's, or (carbon unpriced) worked out here."""
    if terms.carbon_kg is not None:
        return terms.carbon_kg
    run_s = np.array([e.run.value for e in terms.estimates], dtype=np.float64)
    return kg_co2(terms.candidates.carbon, run_s, terms.job.cores, terms.job.gpus)


def _candidate(
    ctx: RankContext, terms: CandidateTerms, i: int, now: float, kg: float
) -> ExplainedCandidate:
    c, est, w = terms.candidates.candidates[i], terms.estimates[i], terms.waits.at(i)
    reported = c.pool.time_s
    sent = NOTHING if terms.sent is None else terms.sent.at(i)
    ranking = ctx.settings.ranking
    job, rate = terms.job, ranking.carbon_s_per_kg
    return ExplainedCandidate(
        id=c.id,
        position=i,
        site=c.site,
        state=STATE_NAMES[w.state],
        transfer=terms.transfers.of(i),
        wait_s=w.seconds,
        wait_note=wait_note(w, c.pool, terms.job, sent, ranking),
        run=est.run,
        success=est.success,
        penalty=float(terms.penalties[i]),
        expected=float(terms.expected[i]),
        cluster_age=None if reported == -math.inf else now - reported,
        carbon_kg=kg,
        carbon_s=kg * rate,
        carbon_note=c.carbon.note(kg, est.run.value, job.cores, job.gpus, rate, now),
    )


def _reason(
    row: ExplainedCandidate,
    previous: ExplainedCandidate | None,
    any_fresh: bool,
    staleness: float,
    kept: str = "TPV's order",
) -> str:
    if row.state == "cannot_fit":
        return f"last: {row.wait_note}"
    if row.state == "stale":
        age = row.cluster_age
        why = (
            f"cluster usage {_fmt_age(age)} old (limit {_fmt_age(staleness)})"
            if age is not None
            else f"no cluster usage for site {row.site!r}"
        )
        if not any_fresh:
            return f"no current metrics ({why}): {kept} kept"
        return f"metrics stale ({why}): after all fresh destinations, in TPV's order"
    if previous is None:
        return f"lowest expected time to success: {row.expected:.0f} s"
    return (
        f"expected {row.expected:.0f} s, {row.expected - previous.expected:.0f} s "
        f"more than {previous.id}"
    )


def _metric_ages(
    ctx: RankContext, row: ExplainedCandidate, tool: str | None, now: float
) -> MetricAges:
    view, history = ctx.derived.view, ctx.derived.history
    queued = view.queues.get(row.id, {}).get("queued")
    runtime = history.runtimes.get((row.id, tool)) if tool else None
    outcome = history.outcomes.get((row.id, tool)) if tool else None
    carbon = ctx.derived.intensities.current.get(row.site)
    return MetricAges(
        cluster_usage_s=None if row.cluster_age is None else round(max(0.0, row.cluster_age), 1),
        queue_s=_age(now, queued.time_s if queued else None),
        run_time_s=_age(now, runtime.time_s if runtime else None),
        outcomes_s=_age(now, outcome.time_s if outcome else None),
        carbon_intensity_s=_age(now, carbon.time_s if carbon else None),
    )


def server_shares(ctx: RankContext, dest_id: str, tool: str | None) -> str:
    """Each Galaxy server's part of the queue, run times and outcomes pooled for a candidate,
    when more than one server reports them; "" otherwise."""
    view, history = ctx.derived.view, ctx.derived.history
    parts = []
    queued = view.queues.get(dest_id, {}).get("queued")
    if queued is not None and queued.parts:
        each = ", ".join(f"{q.host or '(no host)'} {q.count:.0f}" for q in queued.parts)
        parts.append(f"queue {queued.count:.0f} = {each}")
    runtime = history.runtimes.get((dest_id, tool)) if tool else None
    if runtime is not None and runtime.parts and runtime.count > 0:
        each = ", ".join(
            f"{r.host or '(no host)'} {r.count:.0f} ({r.count / runtime.count:.0%})"
            for r in runtime.parts
        )
        parts.append(f"run times from {runtime.count:.0f} runs: {each}")
    outcome = history.outcomes.get((dest_id, tool)) if tool else None
    total = outcome.ok + outcome.error if outcome is not None else 0.0
    if outcome is not None and outcome.parts and total > 0:
        each = ", ".join(
            f"{o.host or '(no host)'} {o.ok + o.error:.0f} ({(o.ok + o.error) / total:.0%})"
            for o in outcome.parts
        )
        parts.append(f"outcomes of {total:.0f} jobs: {each}")
    return "; ".join(parts)


def _row(
    row: ExplainedCandidate, rank: int, reason: str, ages: MetricAges
) -> DestinationExplanation:
    return DestinationExplanation(
        id=row.id,
        rank=rank,
        site=row.site,
        state=row.state,
        transfer_s=round(row.transfer.seconds, 1),
        wait_s=round(row.wait_s, 1) if math.isfinite(row.wait_s) else None,
        run_s=round(row.run.value, 1),
        p_success=round(row.success.value, 4),
        preference_penalty_s=row.penalty,
        carbon_kg=float(f"{row.carbon_kg:.3g}"),
        carbon_s=round(row.carbon_s, 1),
        expected_s=round(row.expected, 1) if row.state == "fresh" else None,
        metric_ages=ages,
        terms={
            "transfer": row.transfer.note(),
            "wait": row.wait_note,
            "run": row.run.note,
            "success": row.success.note,
            "preference": f"position {row.position + 1} in TPV's order",
            "carbon": row.carbon_note,
        },
        reason=reason,
    )


def explain(
    ctx: RankContext,
    terms: CandidateTerms,
    order: list[int],
    ids: list[str],
    now: float,
    fallback: bool = False,
) -> RankResponse:
    """The answer with every candidate's terms and the reason for its place. `fallback`: the
    request gave a fallback order (the answer when no candidate is fresh)."""
    any_fresh = bool((terms.waits.state == FRESH).any())
    kept = "the fallback order" if fallback else "TPV's order"
    staleness = ctx.settings.metrics.staleness_s
    carbon_kg = _carbon_kg(terms)
    details, previous = [], None
    for rank, index in enumerate(order, start=1):
        row = _candidate(ctx, terms, index, now, float(carbon_kg[index]))
        reason = _reason(row, previous, any_fresh, staleness, kept)
        detail = _row(row, rank, reason, _metric_ages(ctx, row, terms.job.tool_id, now))
        shares = server_shares(ctx, row.id, terms.job.tool_id)
        if shares:
            detail.terms["servers"] = shares
        details.append(detail)
        if row.state == "fresh":
            previous = row
    if any_fresh:
        summary = "ranked by expected time to a successful result"
    else:
        summary = f"no current metrics for any candidate: {kept} unchanged"
    return explained(ids, ctx, summary, details, degraded=not any_fresh)


def explained(
    ids: list[str],
    ctx: RankContext,
    summary: str,
    details: list[DestinationExplanation],
    degraded: bool = False,
) -> RankResponse:
    """The answer with its explanation; degraded too when the metric source is failing."""
    status: RefreshStatus | None = ctx.status
    error = status.last_error if status else None
    return RankResponse(
        sorted_destinations=ids,
        explanation=Explanation(
            source=ctx.derived.view.source,
            source_error=error,
            degraded=degraded or bool(error),
            summary=summary,
            destinations=details,
        ),
    )


_unknown_logged: set[str] = set()


def log_decision(terms: CandidateTerms, order: list[int], caller: str | None = None) -> None:
    """One line per decision (with the calling Galaxy server's token name when tokens are
    set); each unknown destination id once per process."""
    candidates = terms.candidates.candidates
    new_unknown = (
        []
        if terms.candidates.all_known
        else [c.id for c in candidates if not c.known and c.id not in _unknown_logged]
    )
    if new_unknown and len(_unknown_logged) < 10_000:
        _unknown_logged.update(new_unknown)
        log.warning(
            "destinations not in the broker config, ranked with what is known: %s", new_unknown
        )
    if not log.isEnabledFor(logging.INFO):
        return  # the arguments below cost more than the check
    top = order[0]
    state = int(terms.waits.state[top])
    log.info(
        "rank server=%s tool=%s order=%s top=%s expected=%s fresh=%d/%d",
        caller or "-",
        terms.job.tool_id,
        ",".join(candidates[i].id for i in order),
        candidates[top].id,
        f"{terms.expected[top]:.0f}s" if state == FRESH else STATE_NAMES[state],
        int((terms.waits.state == FRESH).sum()),
        len(order),
    )
