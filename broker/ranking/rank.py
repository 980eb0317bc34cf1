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
from dataclasses import dataclass, field, replace

import numpy as np

from broker.config import Settings
from broker.metrics.cache import RefreshStatus
from broker.metrics.view import MetricsView
from broker.ranking.history import Estimate, History, ToolAt
from broker.ranking.models import (
    DestinationExplanation,
    DestinationIn,
    Explanation,
    JobInfo,
    MetricAges,
    RankRequest,
    RankResponse,
    coordinates,
)
from broker.ranking.routed import NOTHING, InFlight, RoutedLedger
from broker.ranking.transfer import Bandwidth, Coordinates, Inputs, Transfer, Transfers
from broker.ranking.wait import FRESH, STATE_NAMES, Pool, Wait, note, pool_of, waits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Destination:
    """What the ranking knows of a destination before it sees a job."""

    id: str
    site: str
    known: bool  # in the broker config
    coords: Coordinates | None  # the config's, else the request's
    local_stores: Collection[str]
    pool: Pool


@dataclass(frozen=True)
class Slate:
    """A request's candidates in TPV's order, resolved against the config and the view."""

    candidates: list[Destination]
    ids: tuple[str, ...]
    pools: list[Pool]
    bandwidth_rows: tuple[np.ndarray, np.ndarray]  # `Bandwidth.rows`
    all_known: bool


_SLATES_MAX = 4096


@dataclass(frozen=True)
class Prepared:
    """A metrics view with what the ranking derives from it once per refresh, so that a
    request only looks things up and does arithmetic."""

    view: MetricsView
    history: History
    bandwidth: Bandwidth
    destinations: dict[str, Destination]  # the configured ones
    _slates: dict[tuple[str, ...], Slate] = field(default_factory=dict, init=False, repr=False)

    def slate(self, request: RankRequest, settings: Settings) -> Slate:
        """The request's candidates. TPV's rules send the same few candidate lists with every
        job, so a list resolved from the config alone is kept for the next request (bounded;
        a new view starts empty); one placed by the request's own coordinates is not."""
        order = request.tpv_order()
        ids = tuple(order)
        found = self._slates.get(ids)
        if found is not None:
            return found
        by_id = {d["id"]: d for d in request.destinations}
        candidates = [self.destination(by_id[i], settings) for i in order]
        found = Slate(
            candidates,
            ids,
            [c.pool for c in candidates],
            self.bandwidth.rows(candidates),
            all(c.known for c in candidates),
        )
        from_config = all(c.known and c.id in self.bandwidth.row for c in candidates)
        if from_config and len(self._slates) < _SLATES_MAX:
            self._slates[ids] = found
        return found

    def destination(self, candidate: DestinationIn, settings: Settings) -> Destination:
        dest_id = candidate["id"]
        known = self.destinations.get(dest_id)
        if known is not None:
            if known.coords is None:
                return replace(known, coords=coordinates(candidate))
            return known
        # Not in the config: its id is its pool, its coordinates are the request's.
        return Destination(
            id=dest_id,
            site=dest_id,
            known=False,
            coords=coordinates(candidate),
            local_stores=(),
            pool=_pool(self.view, self.history, dest_id, dest_id, settings),
        )


def _pool(view: MetricsView, history: History, dest_id: str, site: str, settings: Settings) -> Pool:
    return pool_of(
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
    for dest_id, conf in settings.destinations.items():
        site = settings.site_of(dest_id)
        placed = conf.latitude is not None and conf.longitude is not None
        destinations[dest_id] = Destination(
            id=dest_id,
            site=site,
            known=True,
            coords=(conf.latitude, conf.longitude) if placed else None,
            local_stores=frozenset(conf.objectstores),
            pool=_pool(view, history, dest_id, site, settings),
        )
    store_coords = {k: (o.latitude, o.longitude) for k, o in settings.objectstores.items()}
    placed = {d.id: (d.coords, d.local_stores) for d in destinations.values() if d.coords}
    bandwidth = Bandwidth(settings.ranking.bandwidth, placed, store_coords)
    return Prepared(view, history, bandwidth, destinations)


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
    """Every candidate's terms, in TPV's order."""

    settings: Settings
    slate: Slate
    job: JobInfo
    transfers: Transfers
    waits: list[Wait]
    flight: list[InFlight] | None
    estimates: list[ToolAt]
    expected: list[float]

    def order(self) -> list[int]:
        """Fresh by E (ties: TPV's order), then stale, then cannot-fit, each in TPV's order."""
        by_state: tuple[list[int], ...] = ([], [], [])  # FRESH, STALE, CANNOT_FIT
        for i, w in enumerate(self.waits):
            by_state[w.state].append(i)
        fresh, stale, cannot_fit = by_state
        # sorted() is stable: equal expectations keep TPV's order.
        return sorted(fresh, key=self.expected.__getitem__) + stale + cannot_fit

    def row(self, i: int, now: float) -> Scored:
        c, est, w = self.slate.candidates[i], self.estimates[i], self.waits[i]
        reported = c.pool.time_s
        sent = self.flight[i] if self.flight else NOTHING
        return Scored(
            id=c.id,
            position=i,
            site=c.site,
            state=STATE_NAMES[w.state],
            transfer=self.transfers.of(i),
            wait_s=w.seconds,
            wait_note=note(w, c.pool, self.job, sent, self.settings.ranking),
            run=est.run,
            success=est.success,
            penalty=i * self.settings.ranking.preference_step_s,
            expected=self.expected[i],
            cluster_age=None if reported == -math.inf else now - reported,
        )


def _score(
    settings: Settings,
    prepared: Prepared,
    request: RankRequest,
    now: float,
    routed: RoutedLedger | None,
) -> Scores:
    slate = prepared.slate(request, settings)
    job = request.job_info
    terms = prepared.history.terms(job.tool_id, slate.ids)
    flight = None
    if routed is not None:
        sent = [routed.in_flight(c.site, c.pool.time_s, now) for c in slate.candidates]
        if any(f.jobs for f in sent):
            flight = sent
    wait = waits(
        settings.ranking,
        slate.pools,
        job,
        now,
        settings.metrics.staleness_s,
        terms.queue_s,
        flight,
    )
    inputs = Inputs.of(
        request.datasets, {k: (o.latitude, o.longitude) for k, o in request.objectstores.items()}
    )
    transfers = Transfers.compute(
        prepared.bandwidth, slate.candidates, inputs, slate.bandwidth_rows
    )
    step = settings.ranking.preference_step_s
    expected = [
        (t + w.seconds + r) / p + i * step
        for i, (t, w, r, p) in enumerate(
            zip(transfers.seconds, wait, terms.run_s, terms.success, strict=True)
        )
    ]
    return Scores(settings, slate, job, transfers, wait, flight, terms.at, expected)


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
    candidates = scores.slate.candidates
    new_unknown = (
        []
        if scores.slate.all_known
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
    state = scores.waits[top].state
    log.info(
        "rank tool=%s order=%s top=%s expected=%s fresh=%d/%d",
        request.job_info.tool_id,
        ",".join(candidates[i].id for i in order),
        candidates[top].id,
        f"{scores.expected[top]:.0f}s" if state == FRESH else STATE_NAMES[state],
        sum(w.state == FRESH for w in scores.waits),
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
    candidates = scores.slate.candidates
    if routed is not None and scores.waits[top].state == FRESH:
        job = request.job_info
        staging = scores.transfers.seconds[top]
        routed.add(candidates[top].site, now, staging, job.cores, job.mem_mb, job.gpus)
    ids = [candidates[i].id for i in order]
    if not explain:
        return RankResponse(sorted_destinations=ids)
    any_fresh = any(w.state == FRESH for w in scores.waits)
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
