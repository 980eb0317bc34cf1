"""What the ranking derives from a metrics view once per refresh, so a request only looks up.

Runs in the refresh thread: pooled history and the per-tool success models (`History`), each
configured destination's pool state (`Pool`), its bandwidth from every configured store and
its carbon intensity and power figures (`Carbon`).
A request's candidate list is resolved against this once and kept (`CandidateList`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from broker.config import Settings
from broker.metrics.freshness import current_since
from broker.metrics.view import MetricsView
from broker.ranking.carbon import Carbon, Intensities, carbon_columns
from broker.ranking.history import History
from broker.ranking.pool import Pool, PoolColumns, figures, pool_of
from broker.ranking.transfer import Bandwidth, Coordinates, Rows


@dataclass(frozen=True, slots=True)
class Destination:
    """What the ranking knows of a destination before it sees a job."""

    id: str
    site: str
    known: bool  # in the broker config
    coords: Coordinates | None  # the config's, else the request's
    local_stores: Collection[str]
    pool: Pool
    figures: NDArray[np.float64]  # the pool's, as a row of `PoolColumns`
    carbon: Carbon


@dataclass(frozen=True)
class CandidateList:
    """A request's candidates in TPV's order, resolved against the config and the view."""

    candidates: list[Destination]
    ids: tuple[str, ...]
    pools: list[Pool]
    columns: PoolColumns  # the same pools, figure by figure
    # Each site once, with the time of its pool's point, and each candidate's index into it:
    # TPV's candidates are often several queues of one pool, sharing its in-flight jobs.
    sites: list[tuple[str, float]]
    site_index: NDArray[np.intp]
    bandwidth_rows: Rows  # `Bandwidth.rows`
    all_known: bool

    @cached_property
    def carbon(self) -> NDArray[np.float64]:
        """`carbon.carbon_columns` of the candidates: built only when carbon is priced."""
        return carbon_columns([c.carbon for c in self.candidates])

    @classmethod
    def of(cls, candidates: list[Destination], ids: tuple[str, ...], rows: Rows) -> CandidateList:
        pools = [c.pool for c in candidates]
        where: dict[str, int] = {}
        sites: list[tuple[str, float]] = []
        for c in candidates:
            if c.site not in where:
                where[c.site] = len(sites)
                sites.append((c.site, c.pool.time_s))
        index = np.array([where[c.site] for c in candidates], dtype=np.intp)
        known = all(c.known for c in candidates)
        columns = PoolColumns.of([c.figures for c in candidates])
        return cls(candidates, ids, pools, columns, sites, index, rows, known)


_KEPT_LISTS_MAX = 4096


@dataclass(frozen=True)
class DerivedView:
    """A metrics view with what the ranking derives from it once per refresh."""

    view: MetricsView
    history: History
    bandwidth: Bandwidth
    destinations: dict[str, Destination]  # the configured ones
    intensities: Intensities
    _kept: dict[tuple[str, ...], CandidateList] = field(
        default_factory=dict, init=False, repr=False
    )

    def candidates(
        self, order: tuple[str, ...], coords: Mapping[str, Coordinates], settings: Settings
    ) -> CandidateList:
        """The candidates `order` names. TPV's rules send the same few candidate lists with
        every job, so a list resolved from the config alone is kept for the next request
        (bounded; a new view starts empty); one placed by the request's own coordinates is
        not."""
        found = self._kept.get(order)
        if found is not None:
            return found
        candidates = [self.destination(i, coords.get(i), settings) for i in order]
        found = CandidateList.of(candidates, order, self.bandwidth.rows(candidates))
        from_config = all(c.known and c.id in self.bandwidth.row for c in candidates)
        if from_config and len(self._kept) < _KEPT_LISTS_MAX:
            self._kept[order] = found
        return found

    def destination(
        self, dest_id: str, requested_at: Coordinates | None, settings: Settings
    ) -> Destination:
        known = self.destinations.get(dest_id)
        if known is not None:
            if known.coords is None:
                return replace(known, coords=requested_at)
            return known
        # Not in the config: its id is its pool, its coordinates are the request's.
        pool = _pool(self.view, self.history, dest_id, dest_id, settings)
        ranking = settings.ranking
        carbon = self.intensities.at(dest_id, ranking.watts_per_core, ranking.watts_per_gpu)
        return Destination(dest_id, dest_id, False, requested_at, (), pool, figures(pool), carbon)


def _pool(view: MetricsView, history: History, dest_id: str, site: str, settings: Settings) -> Pool:
    # the queue rows of servers that stopped reporting are left out of the sum here, once
    since = current_since(view.now(), settings.metrics.staleness_s)
    return pool_of(
        view.cluster.get(site),
        history.typical_run.get(dest_id, settings.ranking.default_run_s),
        view.queue_row(dest_id, since),
    )


def derive(view: MetricsView, settings: Settings, now: float | None = None) -> DerivedView:
    """Everything a request reads besides its own body. `now`: the clock the history's age
    limit is taken at (default: the view's)."""
    now = view.now() if now is None else now
    history = History.build(
        view,
        settings.ranking,
        settings.metrics.history_staleness_s,
        features=destination_features(settings),
        now=now,
    )
    sites = {settings.site_of(d) for d in settings.destinations}
    intensities = Intensities.of(view.carbon, settings.metrics.carbon_staleness_s, now, sites)
    ranking = settings.ranking
    destinations = {}
    for dest_id, conf in settings.destinations.items():
        site = settings.site_of(dest_id)
        lat, lon = conf.latitude, conf.longitude
        pool = _pool(view, history, dest_id, site, settings)
        destinations[dest_id] = Destination(
            id=dest_id,
            site=site,
            known=True,
            coords=None if lat is None or lon is None else (lat, lon),
            local_stores=frozenset(conf.objectstores),
            pool=pool,
            figures=figures(pool),
            carbon=intensities.at(
                site,
                ranking.watts_per_core if conf.watts_per_core is None else conf.watts_per_core,
                ranking.watts_per_gpu if conf.watts_per_gpu is None else conf.watts_per_gpu,
            ),
        )
    store_coords = {k: (o.latitude, o.longitude) for k, o in settings.objectstores.items()}
    placed_at = {d.id: (d.coords, d.local_stores) for d in destinations.values() if d.coords}
    bandwidth = Bandwidth(ranking.bandwidth, placed_at, store_coords)
    return DerivedView(view, history, bandwidth, destinations, intensities)


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
