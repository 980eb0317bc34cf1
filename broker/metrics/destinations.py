"""The broker's current picture of every destination, for GET /destinations and ARBO."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from broker.config import Settings
from broker.metrics.freshness import is_current
from broker.metrics.view import MetricsView


def site_free_fraction(settings: Settings, view: MetricsView, site: str) -> float | None:
    """Free CPU fraction of a site's pool, or None when unknown or stale."""
    usage = view.cluster.get(site)
    if usage is None or not is_current(usage.time_s, view.now(), settings.metrics.staleness_s):
        return None
    return usage.free_fraction


def destinations_view(settings: Settings, view: MetricsView) -> dict[str, Any]:
    """Configured destinations plus any destination or site seen only in the metrics."""
    now = view.now()
    staleness = settings.metrics.staleness_s
    ids = list(settings.destinations)
    ids += sorted((set(view.queues) | {d for d, _ in view.runtimes}) - set(ids))
    configured_sites = {settings.site_of(i) for i in ids}
    out: dict[str, Any] = {}
    for dest_id in ids:
        conf = settings.destinations.get(dest_id)
        site = settings.site_of(dest_id)
        usage = view.cluster.get(site)
        age = None if usage is None else round(now - usage.time_s, 1)
        carbon = view.carbon.get(site)
        queues = {
            state: {
                "count": q.count,
                "age_s": round(now - q.time_s, 1),
                "current": is_current(q.time_s, now, staleness),
            }
            for state, q in view.queues.get(dest_id, {}).items()
        }
        out[dest_id] = {
            "site": site,
            "configured": conf is not None,
            "latitude": conf.latitude if conf else None,
            "longitude": conf.longitude if conf else None,
            "state": "no_data"
            if usage is None
            else ("fresh" if is_current(usage.time_s, now, staleness) else "stale"),
            "cluster_usage": None if usage is None else {**asdict(usage), "age_s": age},
            "queues": queues,
            "carbon_intensity": None
            if carbon is None
            else {
                "g_per_kwh": carbon.g_per_kwh,
                "shape": carbon.shape,
                "age_s": round(now - carbon.time_s, 1),
                "current": is_current(carbon.time_s, now, settings.metrics.carbon_staleness_s),
            },
            "tools_with_run_times": sum(1 for d, _ in view.runtimes if d == dest_id),
            "tools_with_outcomes": sum(1 for d, _ in view.outcomes if d == dest_id),
        }
    unmapped = sorted(set(view.cluster) - configured_sites)
    return {
        "source": view.source,
        "staleness_s": staleness,
        "destinations": out,
        "sites_without_destination": unmapped,
    }
