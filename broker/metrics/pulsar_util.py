"""Read the cluster usage ansible-pulsar-util writes, next to this suite's own.

Sites migrating to this suite keep usegalaxy-eu/ansible-pulsar-util's producer and consumer
running for a while, so `htcondor_cluster_usage` holds up to three shapes at once (names and
history in `metric_contract.pulsar_util`): this suite's (tag `site`), pulsar-util's totals line
and its per-slot histogram. They are told apart by their tags and fields, without a setting,
and each becomes the same `ClusterUsage` figures, listing in `missing` the ones the shape does
not carry (the ranking says so in its explanation and uses what there is):

- totals: every figure but idle and held jobs and the largest free slot (the free totals stand
  in for it, as for this suite's older producers); GPUs are counted in slots with a GPU.
- histogram: what is free, slot by slot, so the largest free slot is exact (most cores, then
  memory: the rule of this suite's producer); nothing about claimed slots, so the pool's size,
  running and idle jobs and GPUs are unknown. A pool with no unclaimed slot writes no line at
  all: it turns stale like a silent one.

A pulsar-util `destination_id` is the AMQP vhost of the site's Pulsar: it is taken as the site
name, quotes stripped (`metric_contract.pulsar_util.site_of`); `destinations.<id>.site` maps TPV
destinations to it. For a site that reports in this suite's shape too, the suite's shape wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import metric_contract.pulsar_util as pu
from metric_contract.lineprotocol import Point
from metric_contract.measurements import SITE

TOTALS_SHAPE = "ansible-pulsar-util totals"
HISTOGRAM_SHAPE = "ansible-pulsar-util histogram"
CARBON_SHAPE = "ansible-pulsar-util carbon"  # its `pulsar_carbon_intensity` line

# Lines of one consumer run share Telegraf's timestamp; allow for rounding to the second.
RUN_SLACK_S = 1.0

# The contract's figures a totals line carries, and where from.
_FROM_TOTALS = {
    "cpus": pu.TOTAL_CPUS,
    "cpus_free": pu.UNCLAIMED_CPUS,
    "memory_mb": pu.TOTAL_MEMORY,
    "memory_mb_free": pu.UNCLAIMED_MEMORY,
    "gpus": pu.TOTAL_GPU_SLOTS,
    "gpus_free": pu.UNCLAIMED_GPUS,
    "jobs_running": pu.CLAIMED_BUSY_SLOTS,
}
_NOT_IN_TOTALS = ("jobs_idle", "jobs_held", "largest_free_cpus", "largest_free_memory_mb")
_NOT_IN_HISTOGRAM = (
    "cpus",
    "memory_mb",
    "gpus",
    "gpus_free",
    "jobs_idle",
    "jobs_running",
    "jobs_held",
    "largest_free_gpus",
)


def number(value: Any) -> float | None:
    """A finite number, also from a string that holds one (the role wrote its figures through
    shell substitution); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def is_pulsar_util(point: Point) -> bool:
    """Whether a `htcondor_cluster_usage` point is in one of pulsar-util's shapes."""
    if point.tags.get(SITE):
        return False
    return pu.UNCLAIMED_TAG in point.tags or pu.DESTINATION_ID in point.fields


@dataclass
class PulsarUtilReader:
    """Collects pulsar-util points while a view is built; `usages()` turns them into figures."""

    totals: dict[str, tuple[float, Mapping[str, Any]]] = field(default_factory=dict)
    slots: dict[str, list[tuple[float, float, float, float]]] = field(default_factory=dict)

    def add(self, point: Point) -> None:
        t = point.time_s or 0.0
        if pu.UNCLAIMED_TAG in point.tags:
            site = pu.site_of(point.tags.get(pu.DESTINATION_ID, ""))
            f = point.fields
            count = number(f.get(pu.COUNT))
            cpus, mem = number(f.get(pu.UNCLAIMED_CPUS)), number(f.get(pu.UNCLAIMED_MEMORY))
            if site and count is not None and cpus is not None and mem is not None:
                self.slots.setdefault(site, []).append((t, max(count, 0.0), cpus, mem))
            return
        f = point.fields
        site = pu.site_of(str(f.get(pu.DESTINATION_ID, "")))
        if not site or f.get(pu.DESTINATION_STATUS) == pu.OFFLINE:
            return  # an offline line carries no figures: the last online one ages instead
        if number(f.get(pu.TOTAL_CPUS)) is None:
            return
        queried = number(f.get(pu.QUERYTIME))
        t = queried if queried is not None and queried > 0 else t
        old = self.totals.get(site)
        if old is None or old[0] <= t:
            self.totals[site] = (t, f)

    def usages(self) -> dict[str, dict[str, Any]]:
        """Per site, the `ClusterUsage` keyword arguments of its newest pulsar-util report."""
        out = {site: _from_totals(site, t, f) for site, (t, f) in self.totals.items()}
        for site, lines in self.slots.items():
            usage = _from_histogram(site, lines)
            if site not in out or out[site]["time_s"] <= usage["time_s"]:
                out[site] = usage
        return out


def _from_totals(site: str, t: float, f: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"site": site, "time_s": t, "shape": TOTALS_SHAPE}
    missing = list(_NOT_IN_TOTALS)
    for key, legacy in _FROM_TOTALS.items():
        value = number(f.get(legacy))
        if value is None:
            missing.append(key)
        values[key] = max(value or 0.0, 0.0)
    values.update(
        jobs_idle=0.0,
        jobs_held=0.0,
        largest_free_cpus=values["cpus_free"],
        largest_free_memory_mb=values["memory_mb_free"],
        largest_free_gpus=values["gpus_free"],
    )
    values["missing"] = tuple(missing)
    return values


def _from_histogram(site: str, lines: list[tuple[float, float, float, float]]) -> dict[str, Any]:
    newest = max(t for t, *_ in lines)
    run = [(n, cpus, mem) for t, n, cpus, mem in lines if t >= newest - RUN_SLACK_S]
    cpus_free = sum(n * cpus for n, cpus, _ in run)
    memory_free = sum(n * mem for n, _, mem in run)
    largest = max(((cpus, mem) for n, cpus, mem in run if n > 0), default=(0.0, 0.0))
    return {
        "site": site,
        "time_s": newest,
        # the pool is at least what is free; `missing` says its size is not known
        "cpus": cpus_free,
        "cpus_free": cpus_free,
        "memory_mb": memory_free,
        "memory_mb_free": memory_free,
        "gpus": 0.0,
        "gpus_free": 0.0,
        "jobs_idle": 0.0,
        "jobs_running": 0.0,
        "jobs_held": 0.0,
        "largest_free_cpus": largest[0],
        "largest_free_memory_mb": largest[1],
        "largest_free_gpus": 0.0,
        "shape": HISTOGRAM_SHAPE,
        "missing": _NOT_IN_HISTOGRAM,
    }
