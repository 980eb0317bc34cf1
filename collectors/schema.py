"""The AMQP message between the HTCondor producer and the consumer (schema 1), and its one
line of `htcondor_cluster_usage` line protocol.

Both ends import this module so the producer can never publish what the consumer would refuse.
The message's keys are the contract's field names (`metric_contract.measurements`), and the
site follows the contract's one site rule (`metric_contract.sites`).
Validation is strict because whatever passes it lands in InfluxDB and steers job routing: a
message that is malformed, of another schema version, incomplete or physically absurd (free
CPUs above the total, negative counts, a timestamp in the future) is rejected with a reason,
and the consumer dead-letters it instead of writing a wrong point.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from metric_contract.lineprotocol import format_point
from metric_contract.measurements import (
    CLUSTER,
    CLUSTER_TOTALS,
    LARGEST_FREE_SLOT,
    SITE,
    largest_free_field,
)
from metric_contract.sites import site_problem

SCHEMA_VERSION = 1

# Upper bounds well beyond any real pool, low enough to catch unit mix-ups (bytes sent as MB).
LIMITS = {
    "cpus": 10_000_000,
    "memory_mb": 10_000_000_000,  # 10 PB of RAM
    "gpus": 1_000_000,
    "jobs": 100_000_000,
}
# Producer and consumer clocks may disagree a little; further ahead is a broken clock.
MAX_CLOCK_SKEW_S = 300
MIN_COLLECTED_AT = 1_577_836_800  # 2020-01-01: anything older is a zero or a unit error


ROUTING_PREFIX = "htcondor."


def routing_key(site: str) -> str:
    """The routing key a site's producer publishes with (and may publish with only: the
    RabbitMQ role gives each site's user a topic permission for this key alone)."""
    return ROUTING_PREFIX + site


class MessageError(ValueError):
    """Why a message was refused; goes to the consumer's log line and the dead-letter header."""


@dataclass(frozen=True)
class ClusterState:
    """One pool's state at `collected_at` (unix seconds). Memory in MB, as HTCondor reports."""

    site: str
    collected_at: float
    totals: dict[str, int]
    largest_free_slot: dict[str, int]

    def to_message(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "site": self.site,
            "collected_at": self.collected_at,
            "totals": dict(self.totals),
            "largest_free_slot": dict(self.largest_free_slot),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_message(), separators=(",", ":")).encode()

    def to_line(self) -> str:
        """The line the consumer prints; timestamped with `collected_at`, not with arrival time,
        so a message delayed by a RabbitMQ or consumer outage still lands at the right time."""
        fields: dict[str, int] = dict(self.totals)
        for key in LARGEST_FREE_SLOT:
            fields[largest_free_field(key)] = self.largest_free_slot[key]
        return format_point(
            CLUSTER, {SITE: self.site}, fields, time_ns=round(self.collected_at * 1e9)
        )


def validate_site(site: Any) -> str:
    """A site becomes a routing key and an InfluxDB tag value: the contract's site rule
    (`metric_contract.sites`) decides, the same rule the broker's parser applies."""
    problem = site_problem(site)
    if problem is not None:
        raise MessageError(problem)
    return site


def _count(section: str, key: str, value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MessageError(f"{section}.{key} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise MessageError(f"{section}.{key} is not finite")
    if value < 0:
        raise MessageError(f"{section}.{key} is negative ({value})")
    if value > limit:
        raise MessageError(f"{section}.{key} = {value} is beyond any real pool (limit {limit})")
    # HTCondor counts are integers; fractional MB are rounded so the field type never changes
    # (InfluxDB refuses a float into a field it holds as integer).
    return int(round(value))


def _limit(key: str) -> int:
    return LIMITS["jobs"] if key.startswith("jobs_") else LIMITS[key.removesuffix("_free")]


def parse_message(body: bytes | str, now: float | None = None) -> ClusterState:
    """Validate one message body; raise MessageError naming the first problem."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageError(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise MessageError("body is JSON nested too deeply to parse") from None
    if not isinstance(data, dict):
        raise MessageError("body is not a JSON object")
    if "schema" not in data:
        raise MessageError("missing field 'schema'")
    if data["schema"] != SCHEMA_VERSION or isinstance(data["schema"], bool):
        raise MessageError(f"unsupported schema {data['schema']!r} (this consumer reads 1)")
    for key in ("site", "collected_at", "totals", "largest_free_slot"):
        if key not in data:
            raise MessageError(f"missing field {key!r}")
    site = validate_site(data["site"])

    collected_at = data["collected_at"]
    if isinstance(collected_at, bool) or not isinstance(collected_at, int | float):
        raise MessageError("collected_at must be unix seconds")
    now = time.time() if now is None else now
    if not math.isfinite(collected_at) or collected_at < MIN_COLLECTED_AT:
        raise MessageError(f"collected_at {collected_at!r} is not a plausible unix time")
    if collected_at > now + MAX_CLOCK_SKEW_S:
        raise MessageError(f"collected_at is {collected_at - now:.0f} s in the future")

    raw_totals, raw_slot = data["totals"], data["largest_free_slot"]
    if not isinstance(raw_totals, dict) or not isinstance(raw_slot, dict):
        raise MessageError("totals and largest_free_slot must be objects")
    totals = {}
    for key in CLUSTER_TOTALS:
        if key not in raw_totals:
            raise MessageError(f"missing field 'totals.{key}'")
        totals[key] = _count("totals", key, raw_totals[key], _limit(key))
    slot = {}
    for key in LARGEST_FREE_SLOT:
        if key not in raw_slot:
            raise MessageError(f"missing field 'largest_free_slot.{key}'")
        slot[key] = _count("largest_free_slot", key, raw_slot[key], _limit(key))

    for key in LARGEST_FREE_SLOT:
        if totals[f"{key}_free"] > totals[key]:
            raise MessageError(f"totals.{key}_free ({totals[key + '_free']}) > totals.{key}")
        if slot[key] > totals[f"{key}_free"]:
            raise MessageError(f"largest_free_slot.{key} exceeds totals.{key}_free")
    return ClusterState(site, float(collected_at), totals, slot)
