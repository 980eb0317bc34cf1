"""Order candidate destinations by expected time to a successful result.

    E[d] = (transfer(d) + wait(d) + run(d)) / P_success(d) + preference_step_s * tpv_position(d)

A destination is fresh when its site's cluster usage is younger than `metrics.staleness_s`.
Fresh destinations come first, by E (ties: TPV's order); then stale ones in TPV's order; last
the fresh ones whose pool can never hold the job. With no fresh destination the answer is TPV's
order unchanged. Every candidate id is returned exactly once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from dataclasses import dataclass, replace

import numpy as np

from broker.config import Settings
from broker.metrics.cache import RefreshStatus
from broker.metrics.view import MetricsView
from broker.ranking.history import Estimate, History, ToolAt
from broker.ranking.models import (
    DestinationExplanation,
    DestinationIn,
    Explanation,
    MetricAges,
    RankRequest,
    RankResponse,
)
from broker.ranking.routed import RoutedLedger
from broker.ranking.transfer import Bandwidth, Coordinates, Inputs, Transfer, Transfers
from broker.ranking.wait import FRESH, POOL_COLUMNS, STATE_NAMES, Waits, pool_row

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Destination:
    """What the ranking knows of a destination before it sees a job."""

    id: str
    site: str
    known: bool  # in the broker config
    coords: Coordinates | None  # the config's, else the request's
    local_stores: Collection[str]
    pool: tuple[float, ...]  # its row of the pool matrix (`wait.POOL_COLUMNS`)
    index: int  # that row's index in `Prepared.pools`; -1 when not configured


@dataclass(frozen=True)
class Prepared:
    """A metrics view with what the ranking derives from it once per refresh, so that a
    request only looks things up and does arithmetic on arrays."""

    view: MetricsView
    history: History
    bandwidth: Bandwidth
    destinations: dict[str, Destination]  # the configured ones
    pools: np.ndarray  # one `POOL_COLUMNS` row per configured destination

    def destination(self, candidate: DestinationIn, settings: Settings) -> Destination:
        known = self.destinations.get(candidate.id)
        if known is not None:
            if known.coords is None:
                return replace(known, coords=candidate.coordinates())
            return known
        # Not in the config: its id is its pool, its coordinates are the request's.
        return Destination(
            id=candidate.id,
            site=candidate.id,
            known=False,
            coords=candidate.coordinates(),
            local_stores=(),
            pool=_pool_row(self.view, self.history, candidate.id, candidate.id, settings),
            index=-1,
        )


def _pool_row(
    view: MetricsView, history: History, dest_id: str, site: str, settings: Settings
) -> tuple[float, ...]:
    return pool_row(
        view.cluster.get(site),
        history.typical_run.get(dest_id, settings.ranking.default_run_s),
        view.queue_row(dest_id),
    )


def prepare(view: MetricsView, settings: Settings) -> Prepared:
    """Runs in the refresh thread: pooled history, the per-tool success models, and each
    configured destination's pool state and bandwidth to every configured store."""
    history = History.build(
        view,
        settings.ranking,
        settings.metrics.history_staleness_s,
        features=destination_features(settings),
    )
    destinations = {}
    for index, (dest_id, conf) in enumerate(settings.destinations.items()):
        site = settings.site_of(dest_id)
        placed = conf.latitude is not None and conf.longitude is not None
        destinations[dest_id] = Destination(
            id=dest_id,
            site=site,
            known=True,
            coords=(conf.latitude, conf.longitude) if placed else None,
            local_stores=frozenset(conf.objectstores),
            pool=_pool_row(view, history, dest_id, site, settings),
            index=index,
        )
    pools = np.array([d.pool for d in destinations.values()]).reshape(
        len(destinations), len(POOL_COLUMNS)
    )
    store_coords = {k: (o.latitude, o.longitude) for k, o in settings.objectstores.items()}
    placed = {d.id: (d.coords, d.local_stores) for d in destinations.values() if d.coords}
    bandwidth = Bandwidth(settings.ranking.bandwidth, placed, store_coords)
    return Prepared(view, history, bandwidth, destinations, pools)


def destination_features(settings: Settings) -> dict[str, dict[str, str]]:
    """Each configured destination's features for the success model, plus its `site` when
    another destination shares that pool (they share hardware and its failures; a site of one
    destination would only duplicate the destination's own effect)."""
    sites = [settings.site_of(d) for d in settings.destinations]
    out = {}
    for dest_id, conf in settings.destinations.items():
        feats = dict(conf.features)
        site = settings.site_of(dest_id)
        if "site" not in feats and sites.count(site) > 1:
            feats["site"] = site
        out[dest_id] = feats
    return out


def _age(now: float, t: float | None) -> float | None:
    return None if t is None else round(max(0.0, now - t), 1)


def _fmt_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(slots=True)
class Scored:
    """One candidate with its terms, for the explanation."""

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


@dataclass
class Scores:
    """Every candidate's terms as arrays, in TPV's order."""

    candidates: list[Destination]
    transfers: Transfers
    waits: Waits
    estimates: list[ToolAt]
    penalty: np.ndarray
    expected: np.ndarray

    def order(self) -> list[int]:
        """Fresh by E (ties: TPV's order), then stale, then cannot-fit, each in TPV's order."""
        state = self.waits.state
        key = np.where(state == FRESH, self.expected, 0.0)
        return np.lexsort((np.arange(len(state)), key, state)).tolist()

    def row(self, i: int, now: float) -> Scored:
        c, est = self.candidates[i], self.estimates[i]
        reported = c.pool[0]
        return Scored(
            id=c.id,
            position=i,
            site=c.site,
            state=STATE_NAMES[int(self.waits.state[i])],
            transfer=self.transfers.of(i),
            wait_s=float(self.waits.seconds[i]),
            wait_note=self.waits.note(i),
            run=est.run,
            success=est.success,
            penalty=float(self.penalty[i]),
            expected=float(self.expected[i]),
            cluster_age=None if reported == -math.inf else now - reported,
        )


def _score(
    settings: Settings,
    prepared: Prepared,
    request: RankRequest,
    now: float,
    routed: RoutedLedger | None,
) -> Scores:
    by_id = {d.id: d for d in request.destinations}
    candidates = [prepared.destination(by_id[i], settings) for i in request.tpv_order()]
    rows = [c.index for c in candidates]
    if -1 in rows:
        pools = np.array([c.pool for c in candidates])
    else:
        pools = prepared.pools.take(rows, axis=0)
    terms = prepared.history.terms(request.job_info.tool_id, tuple(c.id for c in candidates))
    flight = None
    if routed is not None:
        sent = [routed.in_flight(c.site, c.pool[0], now) for c in candidates]
        if any(f.jobs for f in sent):
            flight = np.array([(f.jobs, f.cores, f.mem_mb, f.gpus) for f in sent])
    waits = Waits.compute(
        settings.ranking,
        pools,
        request.job_info,
        now,
        settings.metrics.staleness_s,
        terms.queue_s,
        flight,
    )
    inputs = Inputs.of(
        request.datasets,
        prepared.bandwidth.stores,
        {k: (o.latitude, o.longitude) for k, o in request.objectstores.items()},
    )
    transfers = Transfers.compute(prepared.bandwidth, candidates, inputs)
    penalty = np.arange(len(candidates)) * settings.ranking.preference_step_s
    expected = (transfers.seconds + waits.seconds + terms.run_s) / terms.success + penalty
    return Scores(candidates, transfers, waits, terms.at, penalty, expected)


def _reason(row: Scored, previous: Scored | None, any_fresh: bool, staleness: float) -> str:
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
            return f"no current metrics ({why}): TPV's order kept"
        return f"metrics stale ({why}): after all fresh destinations, in TPV's order"
    if previous is None:
        return f"lowest expected time to success: {row.expected:.0f} s"
    return (
        f"expected {row.expected:.0f} s, {row.expected - previous.expected:.0f} s "
        f"more than {previous.id}"
    )


def _metric_ages(row: Scored, prepared: Prepared, tool: str | None, now: float) -> MetricAges:
    view, history = prepared.view, prepared.history
    queued = view.queues.get(row.id, {}).get("queued")
    runtime = history.runtimes.get((row.id, tool)) if tool else None
    outcome = history.outcomes.get((row.id, tool)) if tool else None
    return MetricAges(
        cluster_usage_s=None if row.cluster_age is None else round(max(0.0, row.cluster_age), 1),
        queue_s=_age(now, queued.time_s if queued else None),
        run_time_s=_age(now, runtime.time_s if runtime else None),
        outcomes_s=_age(now, outcome.time_s if outcome else None),
    )


def _explain_row(row: Scored, rank_: int, reason: str, ages: MetricAges) -> DestinationExplanation:
    return DestinationExplanation(
        id=row.id,
        rank=rank_,
        site=row.site,
        state=row.state,
        transfer_s=round(row.transfer.seconds, 1),
        wait_s=round(row.wait_s, 1) if math.isfinite(row.wait_s) else None,
        run_s=round(row.run.value, 1),
        p_success=round(row.success.value, 4),
        preference_penalty_s=row.penalty,
        expected_s=round(row.expected, 1) if row.state == "fresh" else None,
        metric_ages=ages,
        terms={
            "transfer": row.transfer.note(),
            "wait": row.wait_note,
            "run": row.run.note,
            "success": row.success.note,
            "preference": f"position {row.position + 1} in TPV's order",
        },
        reason=reason,
    )


_unknown_logged: set[str] = set()


def _log_decision(request: RankRequest, scores: Scores, order: list[int]) -> None:
    """One line per decision; each unknown destination id once per process."""
    new_unknown = [c.id for c in scores.candidates if not c.known and c.id not in _unknown_logged]
    if new_unknown and len(_unknown_logged) < 10_000:
        _unknown_logged.update(new_unknown)
        log.warning(
            "destinations not in the broker config, ranked with what is known: %s", new_unknown
        )
    if not log.isEnabledFor(logging.INFO):
        return  # the arguments below cost more than the check
    top, state = order[0], scores.waits.state
    log.info(
        "rank tool=%s order=%s top=%s expected=%s fresh=%d/%d",
        request.job_info.tool_id,
        ",".join(scores.candidates[i].id for i in order),
        scores.candidates[top].id,
        f"{scores.expected[top]:.0f}s" if state[top] == FRESH else STATE_NAMES[state[top]],
        int((state == FRESH).sum()),
        len(order),
    )


def rank(
    request: RankRequest,
    settings: Settings,
    prepared: Prepared,
    status: RefreshStatus | None = None,
    explain: bool = False,
    routed: RoutedLedger | None = None,
) -> RankResponse:
    """Order the candidates. With a `routed` ledger, the first choice is recorded as in flight
    to its site, so the next decisions before the site reports again see the slot as taken."""
    view = prepared.view
    now = view.now()
    scores = _score(settings, prepared, request, now, routed)
    order = scores.order()
    _log_decision(request, scores, order)
    top = order[0]
    if routed is not None and scores.waits.state[top] == FRESH:
        job = request.job_info
        staging = float(scores.transfers.seconds[top])
        routed.add(scores.candidates[top].site, now, staging, job.cores, job.mem_mb, job.gpus)
    ids = [scores.candidates[i].id for i in order]
    if not explain:
        return RankResponse(sorted_destinations=ids)
    any_fresh = bool((scores.waits.state == FRESH).any())
    details, previous = [], None
    for i, index in enumerate(order, start=1):
        row = scores.row(index, now)
        reason = _reason(row, previous, any_fresh, settings.metrics.staleness_s)
        ages = _metric_ages(row, prepared, request.job_info.tool_id, now)
        details.append(_explain_row(row, i, reason, ages))
        if row.state == "fresh":
            previous = row
    if any_fresh:
        summary = "ranked by expected time to a successful result"
    else:
        summary = "no current metrics for any candidate: TPV's order unchanged"
    return _explained(ids, prepared, status, summary, details, degraded=not any_fresh)


def _explained(
    ids: list[str],
    prepared: Prepared,
    status: RefreshStatus | None,
    summary: str,
    details: list[DestinationExplanation],
    degraded: bool = False,
) -> RankResponse:
    """The answer with its explanation; degraded too when the metric source is failing."""
    error = status.last_error if status else None
    return RankResponse(
        sorted_destinations=ids,
        explanation=Explanation(
            source=prepared.view.source,
            source_error=error,
            degraded=degraded or bool(error),
            summary=summary,
            destinations=details,
        ),
    )


def rank_or_fallback(
    request: RankRequest,
    settings: Settings,
    prepared: Prepared,
    status: RefreshStatus | None = None,
    explain: bool = False,
    routed: RoutedLedger | None = None,
) -> RankResponse:
    """`rank`, but a bug in it answers TPV's own order (logged) instead of an HTTP 500: a valid
    request always gets a correct, if degraded, answer."""
    try:
        return rank(request, settings, prepared, status, explain, routed)
    except Exception:
        log.exception("ranking failed; answering TPV's own order")
        order = request.tpv_order()
        if not explain:
            return RankResponse(sorted_destinations=order)
        summary = "internal ranking error (see the broker log): TPV's order unchanged"
        return _explained(order, prepared, status, summary, [], degraded=True)
