"""The broker's one settings object.

Loaded from a YAML file (``--config`` or ``TPV_BROKER_CONFIG``; the embedded demo network when
neither is given), then overridden by ``TPV_BROKER_*`` environment variables, where a double
underscore descends one level: ``TPV_BROKER_METRICS__SOURCE=influxdb``,
``TPV_BROKER_METRICS__INFLUXDB__PASSWORD=...``, ``TPV_BROKER_AUTH__TOKENS=a,b``.
Relative paths in the file are relative to the file, so a config and its snapshot can move
together. No other module reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "TPV_BROKER_"
CONFIG_ENV = "TPV_BROKER_CONFIG"
DATA_DIR = Path(__file__).parent / "data"
DEFAULT_CONFIG = DATA_DIR / "demo-network.yml"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InfluxSettings(_Section):
    url: str = "http://127.0.0.1:8086"
    database: str = "galaxy"
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    timeout_s: float = Field(
        default=2.0, gt=0, description="deadline of one whole refresh exchange with InfluxDB"
    )
    refresh_s: float = Field(default=30.0, gt=0)
    lookback_s: float = Field(
        default=8 * 86400, gt=0, description="how far back to look for the last point of a series"
    )


class MetricsSettings(_Section):
    source: Literal["snapshot", "influxdb"] = "snapshot"
    snapshot: Path | None = None
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
    influxdb: InfluxSettings = InfluxSettings()


class DestinationSettings(_Section):
    site: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    objectstores: list[str] = Field(
        default_factory=list, description="object stores local to this destination: no transfer"
    )
    features: dict[str, str] = Field(default_factory=dict)


class ObjectStoreSettings(_Section):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class BandwidthSettings(_Section):
    """Distance-based bandwidth with optional measured overrides (see docs/ranking-model.md)."""

    peak_mb_s: float = Field(default=1000.0, gt=0)
    half_distance_km: float = Field(default=100.0, gt=0)
    floor_mb_s: float = Field(default=10.0, gt=0)
    unknown_distance_km: float = Field(default=1000.0, ge=0)
    matrix: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="objectstore id -> destination id -> MB/s"
    )


class RankingSettings(_Section):
    preference_step_s: float = Field(
        default=60.0, ge=0, description="cost of each step down TPV's own preference order"
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
    bandwidth: BandwidthSettings = BandwidthSettings()


class AuthSettings(_Section):
    tokens: list[str] = Field(default_factory=list, repr=False)

    @field_validator("tokens", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # the environment's form: "tok1,tok2"; an empty string means no tokens
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("tokens")
    @classmethod
    def _no_empty_token(cls, tokens: list[str]) -> list[str]:
        tokens = [t.strip() for t in tokens]
        if not all(tokens):
            # a request without a token would match it: an unset variable must not open the API
            raise ValueError("an empty token would let requests without a token in")
        return tokens


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    log_level: str = "info"
    body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="a request body not received whole within this is answered 408",
    )
    limit_concurrency: int = Field(
        default=200, ge=1, description="connections + tasks at once; beyond, uvicorn answers 503"
    )
    timeout_keep_alive_s: int = Field(
        default=5, ge=1, description="idle keep-alive connections are closed after this (whole s)"
    )
    backlog: int = Field(default=2048, ge=1, description="pending connections the OS queues")


class LimitsSettings(_Section):
    """Bounds on one request: what is larger is refused (413 or 422 naming the limit) instead of
    holding the broker's memory and CPU (see docs/api.md, "Limits")."""

    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="request body size, any route (413)"
    )
    max_destinations: int = Field(
        default=1000, ge=1, description="candidate destinations per /process_data request"
    )
    max_datasets: int = Field(default=10_000, ge=1, description="datasets per /process_data")
    max_objectstores: int = Field(default=1000, ge=1, description="object stores per request")
    inline_body_bytes: int = Field(
        default=16 * 1024,
        ge=0,
        description="a /process_data body larger than this is parsed and ranked in a worker "
        "thread, off the event loop",
    )
    inline_destinations: int = Field(
        default=50,
        ge=0,
        description="a /process_data request with more candidates is ranked in a worker thread",
    )
    reprioritize_max_pending: int = Field(
        default=5000, ge=1, description="pending tasks per /reprioritize request"
    )
    reprioritize_max_completed: int = Field(
        default=1000, ge=1, description="completed tasks per /reprioritize request"
    )
    reprioritize_max_dimensions: int = Field(
        default=50, ge=1, description="values per point (x) in /reprioritize"
    )


class ArboSettings(_Section):
    """ARBO: parallelism per workflow task from its run history (see docs/arbo.md)."""

    database_url: str | None = Field(
        default=None,
        repr=False,
        description="SQLAlchemy URL of the run store; default SQLite at <state_dir>/arbo.sqlite",
    )
    window: int = Field(default=50, ge=3, le=1000, description="recent runs a task's fit uses")
    retain_runs: int = Field(default=1000, ge=10, description="runs kept per task; older pruned")
    max_s: int = Field(default=64, ge=1, le=4096, description="upper bound on s when not asked")
    confidence: float = Field(default=0.9, gt=0.5, lt=1, description="SLO confidence if not asked")
    gp_min_runs: int = Field(default=8, ge=3, description="runs before the residual GP is used")
    max_run_seconds: float = Field(
        default=30 * 86400, gt=0, description="reported durations above this are rejected"
    )


class DecisionLogSettings(_Section):
    """The decision log: every `/process_data` decision that carries a `job_id`, written to the
    InfluxDB of `metrics.influxdb` (same URL, database, credentials and `timeout_s`) as the
    `routing_decision` measurement, off the request path (see docs/api.md, "Decision log").
    Active only with `metrics.source: influxdb` (a snapshot has no InfluxDB to write to)."""

    enabled: bool = True
    max_buffered_points: int = Field(
        default=500_000,
        ge=1,
        description="candidate points kept in memory while InfluxDB cannot take them (about 80 "
        "bytes each); beyond, the oldest decisions are dropped and counted",
    )
    batch_points: int = Field(
        default=5000, ge=1, description="points per /write (a larger decision goes alone)"
    )
    flush_s: float = Field(default=1.0, gt=0, description="how often buffered decisions are sent")
    retry_max_s: float = Field(
        default=60.0, gt=0, description="longest wait between retries while InfluxDB fails"
    )
    shutdown_s: float = Field(
        default=5.0, ge=0, description="at shutdown, how long to try writing what is buffered"
    )


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    state_dir: Path = Path("/var/lib/tpv-broker")
    metrics: MetricsSettings = MetricsSettings()
    ranking: RankingSettings = RankingSettings()
    destinations: dict[str, DestinationSettings] = Field(default_factory=dict)
    objectstores: dict[str, ObjectStoreSettings] = Field(default_factory=dict)
    auth: AuthSettings = AuthSettings()
    arbo: ArboSettings = ArboSettings()
    limits: LimitsSettings = LimitsSettings()
    decision_log: DecisionLogSettings = DecisionLogSettings()
    source_file: Path | None = Field(default=None, exclude=True)

    def site_of(self, destination_id: str) -> str:
        """A TPV destination's HTCondor pool; the id itself unless the config says otherwise."""
        dest = self.destinations.get(destination_id)
        return dest.site if dest and dest.site else destination_id


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV:
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {key} conflicts with another override")
        node[path[-1]] = value
    return tree


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, mapping by mapping (a new dict; the inputs are unchanged)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve(path: Path | None, base: Path) -> Path | None:
    if path is None or path.is_absolute():
        return path
    return (base / path).resolve()


def read_yaml_mapping(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """A YAML file holding a mapping (empty: {}); `error` names the file and what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise error(f"{what} {path} must hold a mapping at the top level")
    return raw


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file, apply env overrides, validate; raise ConfigError naming the problem."""
    environ = os.environ if environ is None else environ
    chosen = Path(path or environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    raw = read_yaml_mapping(chosen, "config file", ConfigError)
    try:
        settings = Settings.model_validate(deep_merge(raw, _env_overrides(environ)))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid config {chosen}: {problems}") from exc
    base = chosen.resolve().parent
    settings.source_file = chosen.resolve()
    settings.metrics.snapshot = _resolve(settings.metrics.snapshot, base)
    settings.state_dir = _resolve(settings.state_dir, base) or settings.state_dir
    if settings.metrics.source == "snapshot" and settings.metrics.snapshot is None:
        raise ConfigError(
            f"invalid config {chosen}: metrics.snapshot is required for source snapshot"
        )
    return settings
