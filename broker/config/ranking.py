"""The network the broker ranks over (destinations, object stores, the bandwidth between them)
and the ranking model's constants: everything a ranking reads besides the live metrics."""

from __future__ import annotations

from pydantic import Field

from broker.config.section import Section


class DestinationSettings(Section):
    site: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    objectstores: list[str] = Field(
        default_factory=list, description="object stores local to this destination: no transfer"
    )
    features: dict[str, str] = Field(default_factory=dict)
    watts_per_core: float | None = Field(
        default=None,
        gt=0,
        description="power of a busy core here (default ranking.watts_per_core)",
    )
    watts_per_gpu: float | None = Field(
        default=None,
        ge=0,
        description="power of a busy GPU here (default ranking.watts_per_gpu)",
    )


class ObjectStoreSettings(Section):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class BandwidthSettings(Section):
    """Distance-based bandwidth with optional measured overrides (see docs/ranking-model.md)."""

    peak_mb_s: float = Field(default=1000.0, gt=0)
    half_distance_km: float = Field(default=100.0, gt=0)
    floor_mb_s: float = Field(default=10.0, gt=0)
    unknown_distance_km: float = Field(default=1000.0, ge=0)
    matrix: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="objectstore id -> destination id -> MB/s"
    )


class RankingSettings(Section):
    preference_step_s: float = Field(
        default=60.0,
        ge=0,
        description="cost of each step down TPV's own order, for requests without tpv_scores",
    )
    preference_level_s: float = Field(
        default=300.0,
        ge=0,
        description="cost of each TPV score level below the best candidate's, for requests "
        "with tpv_scores (equal scores cost the same)",
    )
    dispatch_s: float = Field(default=30.0, ge=0, description="wait when the job fits right now")
    routed_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="a routed job shows in its site's metrics this long after its data is staged",
    )
    default_wait_s: float = Field(default=300.0, ge=0)
    default_run_s: float = Field(default=900.0, gt=0)
    min_runs: int = Field(default=5, ge=1, description="runs of a tool at a destination to trust")
    prior_strength: float = Field(
        default=10.0, gt=0, description="pseudo-jobs in the success prior"
    )
    default_success: float = Field(default=0.95, gt=0, le=1)
    min_success: float = Field(default=0.01, gt=0, le=1)
    carbon_s_per_kg: float = Field(
        default=0.0,
        ge=0,
        description="seconds of expected turnaround one kg of CO2eq is worth (0: carbon plays "
        "no part in the order; the explanation still shows each candidate's kg)",
    )
    watts_per_core: float = Field(
        default=10.0,
        gt=0,
        description="power a busy core draws, with its share of memory, board and cooling, "
        "where a destination sets none",
    )
    watts_per_gpu: float = Field(
        default=300.0,
        ge=0,
        description="power a busy GPU draws, where a destination sets none",
    )
    bandwidth: BandwidthSettings = BandwidthSettings()
