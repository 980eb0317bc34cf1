"""The values of one series of the metric contract, as the ranking reads them: a pool's usage,
a queue count, a tool's run times and its outcomes at a destination, a site's carbon intensity.

Apart from `broker.metrics.view` (which keeps the newest of each and combines Galaxy servers)
because the ranking's terms take these values one at a time and need nothing of the view. Each
type knows how to pool several Galaxy servers' values of the same series (`parts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import metric_contract.measurements as mc
from metric_contract.lineprotocol import Point

OWN_SHAPE = "tpv-broker"  # `ClusterUsage.shape` of this suite's own producer
# The largest carbon intensity taken as real, g CO2eq/kWh: lignite plants emit about 1,100 at the
# chimney, so five times that leaves room for any grid and none for a figure in other units.
MAX_G_PER_KWH = 5000.0


def number_field(fields: dict, key: str, default: float = 0.0) -> float:
    """A numeric field; `default` when it is missing, not a number, or NaN/infinite (line
    protocol admits them; the ranking's comparisons would order them arbitrarily)."""
    value = fields.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


@dataclass(frozen=True)
class ClusterUsage:
    """One HTCondor pool's state (memory in MB, as HTCondor reports it)."""

    site: str
    time_s: float
    cpus: float
    cpus_free: float
    memory_mb: float
    memory_mb_free: float
    gpus: float
    gpus_free: float
    jobs_idle: float
    jobs_running: float
    jobs_held: float
    largest_free_cpus: float
    largest_free_memory_mb: float
    largest_free_gpus: float
    shape: str = OWN_SHAPE  # which producer's shape the figures came from
    missing: tuple[str, ...] = ()  # figures that shape does not carry (stand-ins above)

    @classmethod
    def from_point(cls, point: Point) -> ClusterUsage:
        # The attribute names are the contract's field names (a unit test holds them equal).
        f = point.fields
        values: dict[str, Any] = {key: number_field(f, key) for key in mc.CLUSTER_TOTALS}
        for key in mc.LARGEST_FREE_SLOT:
            # Older producers may lack the largest-slot fields: the totals are an upper bound.
            name = mc.largest_free_field(key)
            values[name] = number_field(f, name, values[f"{key}_free"])
        return cls(site=point.tags.get(mc.SITE, ""), time_s=point.time_s or 0.0, **values)

    @property
    def totals_known(self) -> bool:
        """Whether the pool's size is known (not for pulsar-util's histogram of free slots)."""
        return "cpus" not in self.missing

    @property
    def free_fraction(self) -> float | None:
        if self.cpus <= 0 or not self.totals_known:
            return None
        return max(0.0, min(1.0, self.cpus_free / self.cpus))


@dataclass(frozen=True)
class QueueCount:
    """Galaxy's jobs in one state for a destination. With several Galaxy servers (Telegraf's
    `host` tag) the count is the sum of each server's newest row and `parts` holds those rows."""

    count: float
    time_s: float
    host: str = ""
    parts: tuple[QueueCount, ...] = ()

    @classmethod
    def combined(cls, rows: list[QueueCount]) -> QueueCount:
        if len(rows) == 1:
            return rows[0]
        parts = tuple(sorted(rows, key=lambda r: r.host))
        return cls(sum(r.count for r in parts), max(r.time_s for r in parts), parts=parts)


@dataclass(frozen=True)
class RunStats:
    """A tool's queue and run time at a destination, in seconds (gxadmin --seconds)."""

    count: float
    median_queue: float | None
    median_run: float | None
    perc_95_queue: float | None
    perc_95_run: float | None
    time_s: float
    host: str = ""  # the Galaxy server (Telegraf's `host` tag); "" when pooled or untagged
    parts: tuple[RunStats, ...] = ()  # each server's stats, when pooled from more than one

    @classmethod
    def pooled(cls, parts: list[RunStats]) -> RunStats:
        """Several servers' stats as one: runs summed, each time a run-weighted mean of the
        servers' (the pooled median itself cannot be had from the medians)."""
        if len(parts) == 1:
            return parts[0]

        def mean(key: str) -> float | None:
            pairs = [(p.count, getattr(p, key)) for p in parts if p.count > 0]
            pairs = [(n, v) for n, v in pairs if v is not None]
            weight = sum(n for n, _ in pairs)
            return sum(n * v for n, v in pairs) / weight if weight else None

        return cls(
            count=sum(p.count for p in parts),
            median_queue=mean("median_queue"),
            median_run=mean("median_run"),
            perc_95_queue=mean("perc_95_queue"),
            perc_95_run=mean("perc_95_run"),
            time_s=max(p.time_s for p in parts),
            parts=tuple(sorted(parts, key=lambda p: p.host)),
        )

    @classmethod
    def from_point(cls, point: Point, host: str) -> RunStats:
        f = point.fields
        return cls(
            count=number_field(f, mc.COUNT),
            median_queue=_opt(f, mc.MEDIAN_QUEUE),
            median_run=_opt(f, mc.MEDIAN_RUN),
            perc_95_queue=_opt(f, mc.PERC_95_QUEUE),
            perc_95_run=_opt(f, mc.PERC_95_RUN),
            time_s=point.time_s or 0.0,
            host=host,
        )

    def since(self, cutoff: float) -> RunStats | None:
        """Without the servers' stats older than `cutoff`; None when nothing is left."""
        if not self.parts:
            return self if self.time_s >= cutoff else None
        kept = [p for p in self.parts if p.time_s >= cutoff]
        return RunStats.pooled(kept) if kept else None


@dataclass(frozen=True)
class Outcomes:
    ok: float
    error: float
    time_s: float
    host: str = ""  # as RunStats
    parts: tuple[Outcomes, ...] = ()

    @classmethod
    def pooled(cls, parts: list[Outcomes]) -> Outcomes:
        """Several servers' counts as one: summed."""
        if len(parts) == 1:
            return parts[0]
        parts = sorted(parts, key=lambda p: p.host)
        ok, error = sum(p.ok for p in parts), sum(p.error for p in parts)
        return cls(ok, error, max(p.time_s for p in parts), parts=tuple(parts))

    def since(self, cutoff: float) -> Outcomes | None:
        """Without the servers' counts older than `cutoff`; None when nothing is left."""
        if not self.parts:
            return self if self.time_s >= cutoff else None
        kept = [p for p in self.parts if p.time_s >= cutoff]
        return Outcomes.pooled(kept) if kept else None


@dataclass(frozen=True)
class CarbonIntensity:
    """The carbon intensity of the grid a site draws from, g CO2eq per kWh, and which shape it
    was written in (this suite's, `site` tag, or ansible-pulsar-util's, `destination_id`
    field)."""

    site: str
    g_per_kwh: float
    time_s: float
    shape: str = OWN_SHAPE

    @classmethod
    def from_point(cls, point: Point, site: str, shape: str) -> CarbonIntensity | None:
        """None when the point has no usable intensity: missing, not a number, negative, or
        above `MAX_G_PER_KWH` (no grid comes near; a larger figure is a unit or writer error,
        and would overflow the products it enters)."""
        value = _opt(point.fields, mc.CARBON_INTENSITY)
        if value is None or value > MAX_G_PER_KWH:
            return None
        return cls(site, value, point.time_s or 0.0, shape)


def _opt(fields: dict, key: str) -> float | None:
    value = fields.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)
