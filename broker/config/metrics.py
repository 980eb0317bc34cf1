"""Where the broker's metrics come from: InfluxDB (and how it is queried) or a snapshot file,
and the decision log the broker writes back to the same InfluxDB.

The decision log is here, not with the service settings, because it has no server of its own:
it writes with the URL, database, credentials and timeout of ``metrics.influxdb``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from broker.config.section import Section
from metric_contract.measurements import CARBON, SERIES_TAGS


class InfluxSettings(Section):
    url: str = "http://127.0.0.1:8086"
    database: str = "galaxy"
    username: str | None = Field(
        default=None, description="1.x user (2.x: a v1 authorization; 3.x: ignored, any name)"
    )
    password: str | None = Field(default=None, repr=False)
    token: str | None = Field(
        default=None,
        repr=False,
        description="API token (InfluxDB 2.x/3.x), sent as `Authorization: Token ...`",
    )
    timeout_s: float = Field(
        default=2.0, gt=0, description="deadline of one whole refresh exchange with InfluxDB"
    )
    refresh_s: float = Field(default=30.0, gt=0)
    lookback_s: float = Field(
        default=8 * 86400, gt=0, description="how far back to look for the last point of a series"
    )
    attempt_window_s: float = Field(
        default=30 * 86400,
        gt=0,
        description="per-attempt outcomes (job_attempt_outcome) counted over this window",
    )
    lookbacks_s: dict[str, float] = Field(
        default_factory=dict,
        description="measurement -> its own lookback, instead of lookback_s (InfluxDB 3 refuses "
        "queries that span too many files: look back no further than a measurement needs)",
    )

    @field_validator("lookbacks_s")
    @classmethod
    def _known_measurements(cls, lookbacks: dict[str, float]) -> dict[str, float]:
        for name, seconds in lookbacks.items():
            if name not in SERIES_TAGS:
                known = ", ".join(sorted(SERIES_TAGS))
                raise ValueError(f"unknown measurement {name!r} (known: {known})")
            if not seconds > 0:
                raise ValueError(f"{name}: a lookback must be more than 0 s")
        return lookbacks

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> InfluxSettings:
        if self.token and (self.username or self.password):
            raise ValueError("set either token or username/password, not both")
        return self


class MetricsSettings(Section):
    source: Literal["snapshot", "influxdb"] = Field(
        default="influxdb",
        description="influxdb unless a snapshot file is given: a production config names its "
        "InfluxDB, a demo its snapshot",
    )
    snapshot: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _source_from_snapshot(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("source") is None:
            return {**data, "source": "snapshot" if data.get("snapshot") else "influxdb"}
        return data

    staleness_s: float = Field(
        default=300,
        gt=0,
        description="live metrics (cluster usage, queues) older than this are stale",
    )
    history_staleness_s: float = Field(
        default=3 * 86400,
        gt=0,
        description="run-time and outcome aggregates (refreshed daily) older than this are ignored",
    )
    carbon_staleness_s: float = Field(
        default=2 * 3600,
        gt=0,
        description="a carbon intensity (hourly from Electricity Maps) older than this is not used",
    )
    influxdb: InfluxSettings = InfluxSettings()

    def lookbacks_s(self) -> dict[str, float]:
        """`influxdb.lookbacks_s`, with carbon intensities looked back for only as far as one
        can be used (`carbon_staleness_s`) unless it names them: a longer range would only make
        InfluxDB 3 refuse the query for the files it spans."""
        return {CARBON: self.carbon_staleness_s, **self.influxdb.lookbacks_s}


class DecisionLogSettings(Section):
    """The decision log: every `/process_data` decision that carries a `job_id`, written to the
    InfluxDB of `metrics.influxdb` (same URL, database, credentials and `timeout_s`) as the
    `routing_decision` measurement, off the request path (see docs/api.md, "Decision log").
    Active only with `metrics.source: influxdb` (a snapshot has no InfluxDB to write to)."""

    enabled: bool = True
    max_buffered_points: int = Field(
        default=500_000,
        ge=1,
        description="decisions kept in memory while InfluxDB cannot take them, counted in "
        "candidates (about 80 bytes each); beyond, the oldest decisions are dropped and counted",
    )
    batch_points: int = Field(
        default=5000,
        ge=1,
        description="decisions per /write, counted in candidates (a larger decision goes alone)",
    )
    flush_s: float = Field(default=1.0, gt=0, description="how often buffered decisions are sent")
    retry_max_s: float = Field(
        default=60.0, gt=0, description="longest wait between retries while InfluxDB fails"
    )
    shutdown_s: float = Field(
        default=5.0, ge=0, description="at shutdown, how long to try writing what is buffered"
    )
