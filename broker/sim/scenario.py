"""A simulation scenario: the network, the workload, what goes wrong, and the metric pipeline.

Loaded from YAML (examples/scenarios/*.yaml). A scenario may `extends:` another file (relative
path): the two are merged key by key (mappings recursively; lists and scalars replaced), so the
European network is written once and each scenario states only what differs.

Times in a scenario are hours relative to the start of the measured window (`duration_h`); the
history before it (`history_h`) is simulated under today's policy (weighted random) and is what
gxadmin and the outcome collector report when the measured window opens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from broker.config import BandwidthSettings, deep_merge, read_yaml_mapping


class ScenarioError(Exception):
    """The scenario cannot be used; the message names the file and the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrueBandwidthSpec(_Model):
    """The scenario's `bandwidth:`, the network's true bandwidth: the broker's distance model
    with this shape, times a fixed random factor per (store, site) pair (lognormal,
    `noise_sigma`) the broker does not know."""

    peak_mb_s: float = Field(default=1000.0, gt=0)
    half_distance_km: float = Field(default=100.0, gt=0)
    floor_mb_s: float = Field(default=10.0, gt=0)
    noise_sigma: float = Field(default=0.3, ge=0)

    def model_shape(self) -> BandwidthSettings:
        """The shape as the broker's bandwidth settings: what the true network is built from
        (with the noise on top) and what the administrator configures (without it)."""
        return BandwidthSettings(
            peak_mb_s=self.peak_mb_s,
            half_distance_km=self.half_distance_km,
            floor_mb_s=self.floor_mb_s,
        )


class ObjectStore(_Model):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    weight: float = Field(default=1.0, ge=0, description="share of input datasets homed here")


class Site(_Model):
    destination: str | None = Field(
        default=None, description="TPV destination id (default: the site)"
    )
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    machines: int = Field(ge=1)
    cores_per_machine: int = Field(ge=1)
    memory_gb_per_machine: float = Field(gt=0)
    gpus_per_machine: int = Field(default=0, ge=0)
    speed: float = Field(default=1.0, gt=0, description="run-time multiplier: > 1 is slower")
    objectstores: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    weight: float | None = Field(default=None, ge=0, description="weighted random; default cores")
    failure_rate: float = Field(default=0.01, ge=0, le=1)
    background_load: float = Field(
        default=0.0, ge=0, lt=1, description="share of cores local (non-Galaxy) users keep busy"
    )
    features: dict[str, str] = Field(default_factory=dict)
    carbon_g_per_kwh: float | None = Field(
        default=None,
        ge=0,
        description="carbon intensity of the site's grid, g CO2eq/kWh, reported with every "
        "cluster report (pulsar_carbon_intensity); none: the site reports none",
    )
    watts_per_core: float = Field(default=10.0, gt=0, description="power of a busy core")
    watts_per_gpu: float = Field(default=300.0, ge=0, description="power of a busy GPU")

    @property
    def cores(self) -> int:
        return self.machines * self.cores_per_machine


class ToolInputsSpec(_Model):
    """A tool's `inputs:`: how many datasets a job reads and their sizes (lognormal)."""

    count: int = Field(default=1, ge=0)
    size_median_mb: float = Field(default=100.0, ge=0)
    size_sigma: float = Field(default=1.0, ge=0)


class Tool(_Model):
    share: float = Field(gt=0, description="relative frequency in the job stream")
    cores: int = Field(default=1, ge=1)
    mem_gb: float = Field(default=4.0, gt=0)
    gpus: int = Field(default=0, ge=0)
    run_median_s: float = Field(gt=0, description="on a speed-1.0 site")
    run_sigma: float = Field(default=0.5, ge=0)
    failure_rate: float = Field(default=0.01, ge=0, le=1)
    inputs: ToolInputsSpec = ToolInputsSpec()
    prefer: list[str] = Field(default_factory=list, description="TPV scheduling.prefer tags")


class Burst(_Model):
    start_h: float
    duration_h: float = Field(gt=0)
    jobs: int = Field(ge=0)
    tools: dict[str, float] = Field(default_factory=dict, description="tool shares; default all")


class Arrivals(_Model):
    jobs_per_hour: float = Field(ge=0)
    diurnal_amplitude: float = Field(default=0.0, ge=0, lt=1)
    bursts: list[Burst] = Field(default_factory=list)


class FailureOverride(_Model):
    site: str
    tool: str
    probability: float = Field(ge=0, le=1)
    from_h: float = Field(default=-1e9, description="hours from the measured start")
    to_h: float = Field(default=1e9)
    after_fraction: float = Field(default=0.5, ge=0, le=1, description="of the run, when it fails")


class Outage(_Model):
    site: str
    start_h: float
    duration_h: float = Field(gt=0)


class Pipeline(_Model):
    """Cadence and delay of each metric path (docs/metric-contract.md)."""

    producer_interval_s: float = Field(default=60.0, gt=0)
    consumer_delay_s: float = Field(default=5.0, ge=0, description="AMQP -> Telegraf -> InfluxDB")
    queue_interval_s: float = Field(default=60.0, gt=0, description="gxadmin queue (Telegraf)")
    runtime_interval_s: float = Field(default=86400.0, gt=0, description="gxadmin run times")
    runtime_window_days: float = Field(default=30.0, gt=0)
    outcomes_interval_s: float = Field(default=600.0, gt=0)
    outcomes_window_days: float = Field(default=30.0, gt=0)
    broker_refresh_s: float = Field(default=30.0, gt=0, description="the broker's cache refresh")


class Scenario(_Model):
    name: str
    description: str = ""
    duration_h: float = Field(gt=0, description="measured submission window")
    history_h: float = Field(default=24.0, ge=0, description="warm-up under weighted random")
    drain_h: float = Field(default=48.0, gt=0, description="hard stop after the window closes")
    max_attempts: int = Field(default=3, ge=1, description="Galaxy resubmissions + 1")
    negotiation_interval_s: float = Field(default=60.0, gt=0, description="HTCondor negotiator")
    outage_detect_s: float = Field(default=600.0, ge=0, description="Galaxy notices a lost job")
    bandwidth: TrueBandwidthSpec = TrueBandwidthSpec()
    objectstores: dict[str, ObjectStore]
    sites: dict[str, Site] = Field(min_length=1)
    tools: dict[str, Tool] = Field(min_length=1)
    arrivals: Arrivals
    failures: list[FailureOverride] = Field(default_factory=list)
    outages: list[Outage] = Field(default_factory=list)
    pipeline: Pipeline = Pipeline()
    broker: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the broker's settings (e.g. ranking)"
    )

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        for name, site in self.sites.items():
            for store in site.objectstores:
                if store not in self.objectstores:
                    raise ValueError(f"sites.{name}.objectstores: unknown object store {store!r}")
        for i, f in enumerate(self.failures):
            if f.site not in self.sites:
                raise ValueError(f"failures.{i}.site: unknown site {f.site!r}")
            if f.tool not in self.tools:
                raise ValueError(f"failures.{i}.tool: unknown tool {f.tool!r}")
        for i, o in enumerate(self.outages):
            if o.site not in self.sites:
                raise ValueError(f"outages.{i}.site: unknown site {o.site!r}")
        for i, b in enumerate(self.arrivals.bursts):
            for tool in b.tools:
                if tool not in self.tools:
                    raise ValueError(f"arrivals.bursts.{i}.tools: unknown tool {tool!r}")
        with_carbon = [s for s, conf in self.sites.items() if conf.carbon_g_per_kwh is not None]
        if with_carbon and len(with_carbon) < len(self.sites):
            # a site without one would count as emitting nothing in the figures
            missing = sorted(set(self.sites) - set(with_carbon))
            raise ValueError(f"sites: carbon_g_per_kwh is set for some sites, not for {missing}")
        dests = [self.destination_of(s) for s in self.sites]
        if len(set(dests)) != len(dests):
            raise ValueError("sites: two sites map to the same destination id")
        return self

    def destination_of(self, site: str) -> str:
        return self.sites[site].destination or site


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ScenarioError(f"scenario {path}: `extends` loops back to itself")
    raw = read_yaml_mapping(path, "scenario", ScenarioError)
    parent = raw.pop("extends", None)
    if parent:
        base = _read(path.parent / parent, (*seen, path))
        base.pop("name", None)
        base.pop("description", None)
        raw = deep_merge(base, raw)
    return raw


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    raw = _read(path)
    raw.setdefault("name", path.stem)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ScenarioError(f"invalid scenario {path}: {problems}") from exc
