"""Time to move a job's inputs to a destination.

Bandwidth falls with distance: `max(floor, peak / (1 + km / half_distance_km))` MB/s, unless the
config gives a measured figure for the (object store, destination) pair. Data in an object store
the config declares local to the destination costs nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping
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


class Bandwidth:
    """Seconds per MB from a store to a destination, computed once per pair: sites and stores
    do not move, and a rank request should not redo trigonometry for every dataset. Pairs whose
    coordinates come from the request (not the config) are computed each time."""

    def __init__(self, settings: BandwidthSettings):
        self.settings = settings
        self._pairs: dict[tuple[str, str], tuple[float, bool]] = {}

    def seconds_per_mb(
        self,
        store: str,
        dest_id: str,
        where: Coordinates | None,
        dest: Coordinates | None,
        static: bool,
    ) -> tuple[float, bool]:
        """(seconds per MB, whether the distance was assumed for lack of coordinates)."""
        if static:
            hit = self._pairs.get((store, dest_id))
            if hit is not None:
                return hit
        s = self.settings
        measured = s.matrix.get(store, {}).get(dest_id)
        if measured:
            hit = (1.0 / measured, False)
        elif where is None or dest is None:
            hit = (1.0 / bandwidth_mb_s(s, s.unknown_distance_km), True)
        else:
            hit = (1.0 / bandwidth_mb_s(s, distance_km(where, dest)), False)
        if static:
            self._pairs[(store, dest_id)] = hit
        return hit


@dataclass(frozen=True)
class Inputs:
    """A request's input data grouped per object store, resolved once per request."""

    total_bytes: float
    unknown_store_bytes: float
    # (store, bytes, store coordinates, whether those come from the config)
    by_store: list[tuple[str, float, Coordinates | None, bool]]

    @classmethod
    def of(
        cls,
        datasets: Mapping[str, object],
        config_coords: Mapping[str, Coordinates],
        request_coords: Mapping[str, Coordinates],
    ) -> Inputs:
        totals: dict[str | None, float] = defaultdict(float)
        for ds in datasets.values():
            size = getattr(ds, "size", None)
            if size is not None:  # Galaxy may not know a size: such inputs are not counted
                totals[getattr(ds, "object_store_id", None)] += size
        by_store = []
        for store, size in totals.items():
            if store is None or size <= 0:
                continue
            if store in config_coords:
                by_store.append((store, size, config_coords[store], True))
            else:
                by_store.append((store, size, request_coords.get(store), False))
        return cls(sum(totals.values()), totals.get(None, 0.0), by_store)


def transfer_time(
    bandwidth: Bandwidth,
    dest_id: str,
    dest_coords: Coordinates | None,
    dest_static: bool,
    local_stores: Collection[str],
    inputs: Inputs,
) -> Transfer:
    """Seconds to stage the inputs at the destination (the note is built only when explained)."""
    seconds, moved, assumed = 0.0, 0.0, 0
    for store, size, where, store_static in inputs.by_store:
        if store in local_stores:
            continue
        per_mb, guessed = bandwidth.seconds_per_mb(
            store, dest_id, where, dest_coords, dest_static and store_static
        )
        seconds += size / 1e6 * per_mb
        assumed += guessed
        moved += size
    return Transfer(
        seconds,
        inputs.total_bytes,
        moved,
        inputs.unknown_store_bytes,
        assumed,
        bandwidth.settings.unknown_distance_km,
    )
