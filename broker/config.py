"""The broker's one settings object.

Loaded from a YAML file (``--config`` or ``TPV_BROKER_CONFIG``; the embedded demo network when
neither is given), then overridden by ``TPV_BROKER_*`` environment variables, where a double
underscore descends one level: ``TPV_BROKER_METRICS__SOURCE=influxdb``,
``TPV_BROKER_METRICS__INFLUXDB__PASSWORD=...``, ``TPV_BROKER_AUTH__TOKENS=a,b``.
Relative paths in the file are relative to the file, so a config and its snapshot can move
together. No other module reads the environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from metric_contract.measurements import SERIES_TAGS

ENV_PREFIX = "TPV_BROKER_"
CONFIG_ENV = "TPV_BROKER_CONFIG"
DATA_DIR = Path(__file__).parent / "data"
DEFAULT_CONFIG = DATA_DIR / "demo-network.yml"

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InfluxSettings(_Section):
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


class MetricsSettings(_Section):
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
    """`tokens`: a list (anonymous callers), or a mapping of a Galaxy server's name to its
    token, so that one broker serves several Galaxies and its log says which one called."""

    tokens: list[str] | dict[str, str] = Field(default_factory=list, repr=False)

    @field_validator("tokens", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # the environment's form: "tok1,tok2"; an empty string means no tokens
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("tokens")
    @classmethod
    def _no_empty_token(cls, tokens: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        values = list(tokens.values()) if isinstance(tokens, dict) else tokens
        values = [t.strip() for t in values]
        if not all(values):
            # a request without a token would match it: an unset variable must not open the API
            raise ValueError("an empty token would let requests without a token in")
        if isinstance(tokens, dict):
            if len(set(values)) != len(values):
                raise ValueError("two servers share a token: the log could not tell them apart")
            return {name: t.strip() for name, t in tokens.items()}
        return values

    def named(self) -> dict[str, str]:
        """Each token under the name the log gives its caller (`token 1`, ... for a list)."""
        if isinstance(self.tokens, dict):
            return dict(self.tokens)
        return {f"token {i}": t for i, t in enumerate(self.tokens, start=1)}


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
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="uvicorn worker processes; with more than one, set ledger.redis_url so they "
        "share what was just routed",
    )
    root_path: str = Field(
        default="",
        description="the path prefix a reverse proxy serves the broker under (e.g. /tpv-broker), "
        "with the prefix stripped before it forwards; uvicorn's root_path",
    )

    @field_validator("root_path")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("must start with / (e.g. /tpv-broker), or be empty")
        return value


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


class LedgerSettings(_Section):
    """Where the in-flight ledger lives (see docs/deployment.md, "Several broker processes").
    Without a Redis URL each process keeps its own, which is right for one process."""

    redis_url: str | None = Field(
        default=None,
        repr=False,
        description="redis://[:password@]host:port/db shared by every broker process; "
        "none: in-process",
    )
    key_prefix: str = Field(
        default="tpv_broker:", min_length=1, description="prefix of every key the ledger writes"
    )
    timeout_s: float = Field(
        default=0.5, gt=0, le=10, description="a Redis command taking longer counts as a failure"
    )
    retry_s: float = Field(
        default=1.0, gt=0, le=300, description="wait before reconnecting to a Redis that failed"
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
    ledger: LedgerSettings = LedgerSettings()
    decision_log: DecisionLogSettings = DecisionLogSettings()
    source_file: Path | None = Field(default=None, exclude=True)

    def site_of(self, destination_id: str) -> str:
        """A TPV destination's HTCondor pool; the id itself unless the config says otherwise."""
        dest = self.destinations.get(destination_id)
        return dest.site if dest and dest.site else destination_id


def _setting_exists(path: list[str], annotation: Any = None) -> bool:
    """Whether `path` (lower-case keys) names a setting: a field of a section, or any key of a
    mapping setting (destinations, lookbacks_s, auth.tokens as a mapping, ...)."""
    annotation = Settings if annotation is None else annotation
    if not path:
        return True
    if get_origin(annotation) in (Union, UnionType):  # e.g. a list or a mapping of tokens
        return any(_setting_exists(path, a) for a in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(path[0])
        if field is None or field.exclude:
            return False
        return _setting_exists(path[1:], field.annotation)
    if get_origin(annotation) is dict:
        return _setting_exists(path[1:], get_args(annotation)[1])
    return False  # below a plain value: no keys there


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The overrides as a tree, and which environment variable set each path. A variable that
    names no setting (e.g. TPV_BROKER_TOKEN, meant for the TPV side) is ignored with a warning:
    it belongs to something else on the host, and the config file is not at fault."""
    tree: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV:
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not path or not _setting_exists(path):
            log.warning(
                "ignoring environment variable %s: it names no broker setting "
                "(TPV_BROKER_<SECTION>__<KEY>, see examples/broker.yml)",
                key,
            )
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {key} conflicts with another override")
        if isinstance(node.get(path[-1]), dict):
            raise ConfigError(f"environment variable {key} conflicts with another override")
        node[path[-1]] = value
        origin[tuple(path)] = key
    return tree, origin


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


def _env_key(loc: tuple[Any, ...], origin: Mapping[tuple[str, ...], str]) -> str | None:
    """The environment variable that set the value at `loc` (or a value above it), if any."""
    path = tuple(str(p) for p in loc)
    for i in range(len(path), 0, -1):
        if path[:i] in origin:
            return origin[path[:i]]
    return None


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file, apply env overrides, validate; raise ConfigError naming the problem."""
    environ = os.environ if environ is None else environ
    chosen = Path(path or environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    raw = read_yaml_mapping(chosen, "config file", ConfigError)
    overrides, origin = _env_overrides(environ)
    try:
        settings = Settings.model_validate(deep_merge(raw, overrides))
    except ValidationError as exc:
        from_env = [e for e in exc.errors() if _env_key(e["loc"], origin)]
        if from_env:  # the file may be fine: name the variable that is not
            problems = "; ".join(
                f"environment variable {_env_key(e['loc'], origin)} "
                f"({'.'.join(str(p) for p in e['loc'])}): {e['msg']}"
                for e in from_env
            )
            raise ConfigError(f"invalid setting from the environment: {problems}") from exc
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
