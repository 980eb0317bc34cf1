"""Time to move a job's inputs to a destination.

Bandwidth falls with distance: `max(floor, peak / (1 + km / half_distance_km))` MB/s, unless the
config gives a measured figure for the (object store, destination) pair. Data in an object store
the config declares local to the destination costs nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

from broker.config import BandwidthSettings

EARTH_RADIUS_KM = 6371.0
Coordinates = tuple[float, float]


def distance_km(a: Coordinates, b: Coordinates) -> float:
    """Great-circle (haversine) distance."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def bandwidth_mb_s(settings: BandwidthSettings, km: float) -> float:
    return max(settings.floor_mb_s, settings.peak_mb_s / (1 + km / settings.half_distance_km))


def bytes_by_store(datasets: Mapping[str, object]) -> tuple[dict[str | None, float], int]:
    """Sum input sizes per object store (None: location unknown); count sizes Galaxy lacks."""
    totals: dict[str | None, float] = defaultdict(float)
    missing = 0
    for ds in datasets.values():
        size = getattr(ds, "size", None)
        if size is None:
            missing += 1
            continue
        totals[getattr(ds, "object_store_id", None)] += size
    return dict(totals), missing


def transfer_seconds(
    settings: BandwidthSettings,
    dest_id: str,
    dest_coords: Coordinates | None,
    local_stores: set[str],
    totals: Mapping[str | None, float],
    store_coords: Mapping[str, Coordinates],
) -> tuple[float, str]:
    """Seconds to stage the inputs at the destination, and a note on how it was computed."""
    seconds, moved, assumed, unknown = 0.0, 0.0, 0, 0.0
    for store, size in totals.items():
        if size <= 0:
            continue
        if store is None:
            unknown += size
            continue
        if store in local_stores:
            continue
        mb = size / 1e6
        measured = settings.matrix.get(store, {}).get(dest_id)
        if measured:
            seconds += mb / measured
        else:
            where = store_coords.get(store)
            if where is None or dest_coords is None:
                km = settings.unknown_distance_km
                assumed += 1
            else:
                km = distance_km(where, dest_coords)
            seconds += mb / bandwidth_mb_s(settings, km)
        moved += size
    if not totals or sum(totals.values()) == 0:
        note = "no input data"
    elif moved == 0 and not unknown:
        note = "all inputs already local"
    else:
        note = f"{moved / 1e9:.2f} GB to move"
        if assumed:
            km = settings.unknown_distance_km
            note += f"; {assumed} store(s) without coordinates assumed {km:.0f} km away"
    if unknown:
        note += f"; {unknown / 1e9:.2f} GB in an unknown store not counted"
    return seconds, note
