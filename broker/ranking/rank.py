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
from dataclasses import dataclass

from broker.config import Settings
from broker.metrics.cache import RefreshStatus
from broker.metrics.view import MetricsView
from broker.ranking.history import Estimate, History
from broker.ranking.models import (
    DestinationExplanation,
    Explanation,
    MetricAges,
    RankRequest,
    RankResponse,
)
from broker.ranking.routed import NOTHING, RoutedLedger
from broker.ranking.transfer import Bandwidth, Inputs, Transfer, transfer_time
from broker.ranking.wait import Wait, historical_wait, live_wait

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A metrics view with what the ranking derives from it once per refresh."""

    view: MetricsView
    history: History
    bandwidth: Bandwidth
    # coordinates from the config, resolved once
    dest_coords: dict[str, tuple[float, float]]
    store_coords: dict[str, tuple[float, float]]


def prepare(view: MetricsView, settings: Settings) -> Prepared:
    """Runs in the refresh thread: pooled history and the per-tool success models."""
    return Prepared(
        view,
        History.build(
            view,
            settings.ranking,
            settings.metrics.history_staleness_s,
            features=destination_features(settings),
        ),
        Bandwidth(settings.ranking.bandwidth),
        {
            d: (c.latitude, c.longitude)
            for d, c in settings.destinations.items()
            if c.latitude is not None and c.longitude is not None
        },
        {k: (o.latitude, o.longitude) for k, o in settings.objectstores.items()},
    )


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
    """One candidate with its terms; `state` decides its group, `expected` its place in it."""

    id: str
    position: int
    site: str
    known: bool
    state: str  # fresh | stale | cannot_fit
    transfer: Transfer
    wait: Wait
    run: Estimate
    success: Estimate
    penalty: float
    expected: float
    cluster_age: float | None


def _score(
    settings: Settings,
    prepared: Prepared,
    request: RankRequest,
    now: float,
    routed: RoutedLedger | None,
) -> list[Scored]:
    view, history, rs = prepared.view, prepared.history, settings.ranking
    staleness = settings.metrics.staleness_s
    job = request.job_info
    tool = job.tool_id
    inputs = Inputs.of(
        request.datasets,
        prepared.store_coords,
        {k: (o.latitude, o.longitude) for k, o in request.objectstores.items()},
    )
    by_id = {d.id: d for d in request.destinations}
    rows = []
    for position, dest_id in enumerate(request.tpv_order()):
        conf = settings.destinations.get(dest_id)
        site = conf.site or dest_id if conf else dest_id
        coords = prepared.dest_coords.get(dest_id)
        static = coords is not None
        if not static:
            coords = by_id[dest_id].coordinates()
        usage = view.cluster.get(site)
        cluster_age = None if usage is None else now - usage.time_s
        fresh = cluster_age is not None and cluster_age <= staleness
        if fresh:
            typical = history.typical_run.get(dest_id, rs.default_run_s)
            sent = routed.in_flight(site, usage.time_s, now) if routed else NOTHING
            queued_now = view.queued_now(dest_id, staleness)
            hist = history.queue_time(tool, dest_id)
            wait = live_wait(rs, usage, job, queued_now, typical, sent, hist)
        else:
            wait = historical_wait(rs, history.queue_time(tool, dest_id))
        local = conf.objectstores if conf else ()
        transfer = transfer_time(prepared.bandwidth, dest_id, coords, static, local, inputs)
        run = history.run_time(tool, dest_id)
        success = history.success(tool, dest_id)
        penalty = position * rs.preference_step_s
        state = "stale" if not fresh else ("fresh" if wait.fits_ever else "cannot_fit")
        rows.append(
            Scored(
                id=dest_id,
                position=position,
                site=site,
                known=conf is not None,
                state=state,
                transfer=transfer,
                wait=wait,
                run=run,
                success=success,
                penalty=penalty,
                expected=(transfer.seconds + wait.seconds + run.value) / success.value + penalty,
                cluster_age=cluster_age,
            )
        )
    return rows


def _order(rows: list[Scored]) -> list[Scored]:
    fresh = sorted((r for r in rows if r.state == "fresh"), key=lambda r: (r.expected, r.position))
    stale = [r for r in rows if r.state == "stale"]
    cannot = [r for r in rows if r.state == "cannot_fit"]
    return fresh + stale + cannot


def _reason(row: Scored, previous: Scored | None, any_fresh: bool, staleness: float) -> str:
    if row.state == "cannot_fit":
        return f"last: {row.wait.note}"
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
        wait_s=round(row.wait.seconds, 1) if math.isfinite(row.wait.seconds) else None,
        run_s=round(row.run.value, 1),
        p_success=round(row.success.value, 4),
        preference_penalty_s=row.penalty,
        expected_s=round(row.expected, 1) if row.state == "fresh" else None,
        metric_ages=ages,
        terms={
            "transfer": row.transfer.note(),
            "wait": row.wait.note,
            "run": row.run.note,
            "success": row.success.note,
            "preference": f"position {row.position + 1} in TPV's order",
        },
        reason=reason,
    )


_unknown_logged: set[str] = set()


def _log_decision(request: RankRequest, rows: list[Scored], ordered: list[Scored]) -> None:
    """One line per decision; each unknown destination id once per process."""
    new_unknown = [r.id for r in rows if not r.known and r.id not in _unknown_logged]
    if new_unknown and len(_unknown_logged) < 10_000:
        _unknown_logged.update(new_unknown)
        log.warning(
            "destinations not in the broker config, ranked with what is known: %s", new_unknown
        )
    if not log.isEnabledFor(logging.INFO):
        return  # the arguments below cost more than the check
    top = ordered[0]
    log.info(
        "rank tool=%s order=%s top=%s expected=%s fresh=%d/%d",
        request.job_info.tool_id,
        ",".join(r.id for r in ordered),
        top.id,
        f"{top.expected:.0f}s" if top.state == "fresh" else top.state,
        sum(r.state == "fresh" for r in rows),
        len(rows),
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
    rows = _score(settings, prepared, request, now, routed)
    ordered = _order(rows)
    _log_decision(request, rows, ordered)
    top = ordered[0]
    if routed is not None and top.state == "fresh":
        job = request.job_info
        routed.add(top.site, now, top.transfer.seconds, job.cores, job.mem_mb, job.gpus)
    ids = [r.id for r in ordered]
    if not explain:
        return RankResponse(sorted_destinations=ids)
    any_fresh = any(r.state == "fresh" for r in rows)
    details, previous = [], None
    for i, row in enumerate(ordered, start=1):
        reason = _reason(row, previous, any_fresh, settings.metrics.staleness_s)
        ages = _metric_ages(row, prepared, request.job_info.tool_id, now)
        details.append(_explain_row(row, i, reason, ages))
        if row.state == "fresh":
            previous = row
    error = status.last_error if status else None
    summary = (
        "ranked by expected time to a successful result"
        if any_fresh
        else "no current metrics for any candidate: TPV's order unchanged"
    )
    return RankResponse(
        sorted_destinations=ids,
        explanation=Explanation(
            source=view.source,
            source_error=error,
            degraded=bool(error) or not any_fresh,
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
        return RankResponse(
            sorted_destinations=order,
            explanation=Explanation(
                source=prepared.view.source,
                source_error=status.last_error if status else None,
                degraded=True,
                summary="internal ranking error (see the broker log): TPV's order unchanged",
                destinations=[],
            ),
        )
