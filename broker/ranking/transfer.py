"""Time to move a job's inputs to a destination.

Bandwidth falls with distance: `max(floor, peak / (1 + km / half_distance_km))` MB/s, unless the
config gives a measured figure for the (object store, destination) pair. Data in an object store
the config declares local to the destination costs nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import mul
from typing import Any, Protocol

from broker.config import BandwidthSettings

EARTH_RADIUS_KM = 6371.0
Coordinates = tuple[float, float]
# Per candidate: seconds per byte from each configured store, and whether each distance was
# assumed for lack of coordinates (`Bandwidth.rows`).
Rows = tuple[list[list[float]], list[list[bool]]]


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


class Bandwidth:
    """Seconds per byte from each object store to each destination.

    Sites and stores do not move: for every destination the config places, the seconds per
    byte from every configured store (0 for a store local to it) are one row of a table
    computed once per metrics refresh, so a request multiplies its bytes per store by a row.
    Pairs placed by the request's own coordinates are computed when asked. Plain lists, as in
    the wait model: for tens of candidates and a few stores, arrays cost more than they save."""

    def __init__(
        self,
        settings: BandwidthSettings,
        placed: Mapping[str, tuple[Coordinates, Collection[str]]],
        stores: Mapping[str, Coordinates],
    ):
        """`placed`: destination id -> (its coordinates, its local stores), from the config."""
        self.settings = settings
        self.stores = dict(stores)
        self.column = {store: j for j, store in enumerate(stores)}
        self.row = {dest: i for i, dest in enumerate(placed)}
        self.table = [self.row_for(dest, at, local)[0] for dest, (at, local) in placed.items()]

    def per_byte(
        self, store: str, dest_id: str, store_at: Coordinates | None, dest_at: Coordinates | None
    ) -> tuple[float, bool]:
        """(seconds per byte, whether the distance was assumed for lack of coordinates)."""
        s = self.settings
        measured = s.matrix.get(store, {}).get(dest_id)
        if measured:
            return 1e-6 / measured, False
        if store_at is None or dest_at is None:
            return 1e-6 / bandwidth_mb_s(s, s.unknown_distance_km), True
        return 1e-6 / bandwidth_mb_s(s, distance_km(store_at, dest_at)), False

    def row_for(
        self, dest_id: str, dest_at: Coordinates | None, local: Collection[str]
    ) -> tuple[list[float], list[bool]]:
        """Seconds per byte from each configured store to the destination (0: local), and
        which of those distances were assumed."""
        pairs = [
            (0.0, False) if store in local else self.per_byte(store, dest_id, at, dest_at)
            for store, at in self.stores.items()
        ]
        return [p for p, _ in pairs], [g for _, g in pairs]

    def rows(self, candidates: Sequence[Candidate]) -> Rows:
        """Seconds per byte from each configured store to each candidate (its row of the
        table when the config places it, else computed now), and which of those distances
        were assumed for lack of coordinates."""
        exact = [False] * len(self.stores)
        lines, guesses = [], []
        for c in candidates:
            r = self.row.get(c.id)
            line, guessed = (
                (self.table[r], exact)
                if r is not None
                else self.row_for(c.id, c.coords, c.local_stores)
            )
            lines.append(line)
            guesses.append(guessed)
        return lines, guesses


@dataclass(slots=True)
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


@dataclass(frozen=True)
class Inputs:
    """A request's input data grouped per object store, resolved once per request."""

    total_bytes: float
    unknown_store_bytes: float
    # (store, bytes, the request's coordinates of the store: only read for a store the config
    # does not know, whose bandwidth is computed per request)
    by_store: list[tuple[str, float, Coordinates | None]]

    @classmethod
    def of(
        cls, datasets: Mapping[str, Mapping[str, Any]], request_coords: Mapping[str, Coordinates]
    ) -> Inputs:
        totals: dict[str | None, float] = defaultdict(float)
        for ds in datasets.values():
            size = ds.get("size")
            if size is not None:  # Galaxy may not know a size: such inputs are not counted
                totals[ds.get("object_store_id")] += size
        by_store = [
            (store, size, request_coords.get(store))
            for store, size in totals.items()
            if store is not None and size > 0
        ]
        return cls(sum(totals.values()), totals.get(None, 0.0), by_store)


class Candidate(Protocol):
    """What the transfer model reads of a destination (read-only)."""

    @property
    def id(self) -> str: ...
    @property
    def coords(self) -> Coordinates | None: ...
    @property
    def local_stores(self) -> Collection[str]: ...


@dataclass
class Transfers:
    """Each candidate's staging time (`seconds`); what its explanation says is worked out only
    when asked (`of`)."""

    seconds: list[float]
    bandwidth: Bandwidth
    candidates: Sequence[Candidate]
    inputs: Inputs
    sizes: list[float]  # bytes in each configured store
    per_byte: list[list[float]]  # `Bandwidth.rows`
    guessed: list[list[bool]]
    elsewhere: list[tuple[str, float, Coordinates | None]]  # inputs in stores not configured

    @classmethod
    def compute(
        cls,
        bandwidth: Bandwidth,
        candidates: Sequence[Candidate],
        inputs: Inputs,
        rows: Rows,
    ) -> Transfers:
        """`rows`: `bandwidth.rows(candidates)` (kept with the candidate list)."""
        per_byte, guessed = rows
        sizes = [0.0] * len(bandwidth.column)
        elsewhere = []
        for store, size, store_at in inputs.by_store:
            j = bandwidth.column.get(store)
            if j is None:
                elsewhere.append((store, size, store_at))
            else:
                sizes[j] = size
        seconds = [sum(map(mul, line, sizes)) for line in per_byte]
        for store, size, store_at in elsewhere:
            for i, c in enumerate(candidates):
                if store not in c.local_stores:
                    seconds[i] += size * bandwidth.per_byte(store, c.id, store_at, c.coords)[0]
        return cls(seconds, bandwidth, candidates, inputs, sizes, per_byte, guessed, elsewhere)

    def of(self, i: int) -> Transfer:
        line, guessed = self.per_byte[i], self.guessed[i]
        moved = sum(b for b, p in zip(self.sizes, line, strict=True) if p > 0)
        assumed = sum(1 for b, g in zip(self.sizes, guessed, strict=True) if b > 0 and g)
        c = self.candidates[i]
        for store, size, store_at in self.elsewhere:
            if store not in c.local_stores:
                moved += size
                assumed += self.bandwidth.per_byte(store, c.id, store_at, c.coords)[1]
        return Transfer(
            self.seconds[i],
            self.inputs.total_bytes,
            moved,
            self.inputs.unknown_store_bytes,
            assumed,
            self.bandwidth.settings.unknown_distance_km,
        )
