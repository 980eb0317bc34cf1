"""Time to move a job's inputs to a destination.

Bandwidth falls with distance: `max(floor, peak / (1 + km / half_distance_km))` MB/s, unless the
config gives a measured figure for the (object store, destination) pair. Data in an object store
the config declares local to the destination costs nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from broker.config import BandwidthSettings

EARTH_RADIUS_KM = 6371.0
Coordinates = tuple[float, float]


@lru_cache(maxsize=65536)
def distance_km(a: Coordinates, b: Coordinates) -> float:
    """Great-circle (haversine) distance; cached: sites and stores do not move."""
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


@dataclass(frozen=True)
class Transfer:
    seconds: float
    total_bytes: float
    moved_bytes: float
    unknown_store_bytes: float
    assumed_stores: int
    assumed_km: float

    def note(self) -> str:
        if self.total_bytes == 0:
            return "no input data"
        if self.moved_bytes == 0 and not self.unknown_store_bytes:
            return "all inputs already local"
        note = f"{self.moved_bytes / 1e9:.2f} GB to move"
        if self.assumed_stores:
            note += (
                f"; {self.assumed_stores} store(s) without coordinates assumed"
                f" {self.assumed_km:.0f} km away"
            )
        if self.unknown_store_bytes:
            note += f"; {self.unknown_store_bytes / 1e9:.2f} GB in an unknown store not counted"
        return note


def transfer_time(
    settings: BandwidthSettings,
    dest_id: str,
    dest_coords: Coordinates | None,
    local_stores: set[str],
    totals: Mapping[str | None, float],
    store_coords: Mapping[str, Coordinates],
) -> Transfer:
    """Seconds to stage the inputs at the destination (the note is built only when explained)."""
    seconds, moved, assumed, unknown = 0.0, 0.0, 0, 0.0
    for store, size in totals.items():
        if size <= 0 or store in local_stores:
            continue
        if store is None:
            unknown += size
            continue
        measured = settings.matrix.get(store, {}).get(dest_id)
        if measured:
            seconds += size / 1e6 / measured
        else:
            where = store_coords.get(store)
            if where is None or dest_coords is None:
                km = settings.unknown_distance_km
                assumed += 1
            else:
                km = distance_km(where, dest_coords)
            seconds += size / 1e6 / bandwidth_mb_s(settings, km)
        moved += size
    return Transfer(
        seconds, sum(totals.values()), moved, unknown, assumed, settings.unknown_distance_km
    )
