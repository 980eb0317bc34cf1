"""Request and response of POST /process_data (drop-in for the original TPV Broker).

Units are converted here, once, at the edge: TPV's `mem` is GB (HTCondor, and every metric, is
MB, binary: 1 GB = 1024 MB); dataset sizes are bytes.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypedDict

from broker.ranking.query import ENFORCE, Job, Mode, RankQuery, score_levels
from broker.ranking.transfer import Coordinates, Inputs

# Beyond these no job asks and no dataset is: refused (422) rather than carried into sums whose
# overflow would turn an answer's numbers into infinities. How many items a request may hold is
# a setting (`limits.*`, checked in broker.ranking.routes).
MAX_SIZE_BYTES = 1e18  # an exabyte
MAX_MEM_GB = 1e9
MAX_CORES = 10**6
MAX_GPUS = 10**5
MAX_JOB_ID = 2**63 - 1  # an InfluxDB integer field


class DestinationIn(TypedDict):
    """A candidate destination. Coordinates may be at the top level or in `context`; other keys
    are ignored."""

    __pydantic_config__ = ConfigDict(allow_inf_nan=False)  # type: ignore[misc]

    id: Annotated[str, Field(min_length=1)]
    latitude: NotRequired[Annotated[float, Field(ge=-90, le=90)] | None]
    longitude: NotRequired[Annotated[float, Field(ge=-180, le=180)] | None]
    context: NotRequired[dict[str, Any] | None]


def coordinates(destination: DestinationIn) -> Coordinates | None:
    """The destination's (latitude, longitude): its own, else its context's, else None."""
    lat, lon = destination.get("latitude"), destination.get("longitude")
    if lat is not None and lon is not None:
        return (lat, lon)
    ctx = destination.get("context") or {}
    try:
        lat, lon = float(ctx["latitude"]), float(ctx["longitude"])
    except (KeyError, TypeError, ValueError):
        return None
    if -90 <= lat <= 90 and -180 <= lon <= 180:
        return (lat, lon)
    return None


class ObjectStoreIn(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class DatasetIn(TypedDict):
    """An input dataset. A plain dict, not a model: a job may have hundreds of inputs and the
    ranking only sums their sizes per store (other keys TPV sends are ignored)."""

    __pydantic_config__ = ConfigDict(allow_inf_nan=False)  # type: ignore[misc]

    object_store_id: NotRequired[str | None]
    size: NotRequired[
        Annotated[
            float, Field(ge=0, le=MAX_SIZE_BYTES, description="bytes; null when Galaxy has none")
        ]
        | None
    ]


class JobInfo(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    tool_id: str | None = None
    mem: float = Field(default=0.0, ge=0, le=MAX_MEM_GB, description="GB, as in TPV")
    cores: int = Field(default=1, ge=0, le=MAX_CORES)
    gpus: int = Field(default=0, ge=0, le=MAX_GPUS)

    @field_validator("mem", "cores", "gpus", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any, info) -> Any:
        # TPV 3.x may render an undefined gpus/mem as null; that means "not asked for".
        if value is None:
            return cls.model_fields[info.field_name].default
        return value

    @property
    def mem_mb(self) -> float:
        return self.job().mem_mb  # the one conversion is Job.from_tpv's

    def job(self) -> Job:
        return Job.from_tpv(self.tool_id, self.mem, self.cores, self.gpus)


class RankRequest(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    destinations: list[DestinationIn] = Field(min_length=1)
    objectstores: dict[str, ObjectStoreIn] = Field(default_factory=dict)
    datasets: dict[str, DatasetIn] = Field(default_factory=dict)
    job_info: JobInfo = Field(default_factory=JobInfo)
    preference: list[str] | None = Field(
        default=None, description="TPV's own order of the candidates; the request order if absent"
    )
    job_id: int | None = Field(
        default=None,
        ge=0,
        le=MAX_JOB_ID,
        description="Galaxy's job id, the same for every attempt; decisions with one are logged",
    )
    mode: Mode = Field(
        default=ENFORCE,
        description="enforce: the job goes to the broker's first choice; shadow: to "
        "fallback_order's first, the broker's answer only recorded",
    )
    fallback_order: list[str] | None = Field(
        default=None,
        description="the candidates in the order of the administrator's own rank expression; "
        "the answer when the broker cannot rank (default: TPV's order)",
    )
    tpv_scores: dict[str, float] | None = Field(
        default=None,
        description="TPV's tag score of each candidate (destination id -> score); with it the "
        "preference cost is ranking.preference_level_s per score level below the best, "
        "without it ranking.preference_step_s per position in TPV's order",
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> RankRequest:
        seen: set[str] = set()
        for d in self.destinations:
            if d["id"] in seen:
                raise ValueError(f"destinations: duplicate id {d['id']!r}")
            seen.add(d["id"])
        return self

    def tpv_order(self) -> list[str]:
        """TPV's preference: `preference` first (known ids only), then the rest in request order."""
        ids = [d["id"] for d in self.destinations]
        if not self.preference:
            return ids
        return _complete(self.preference, ids)

    def to_query(self) -> RankQuery:
        """The domain form the ranking reads (TPV's GB converted to MB here, once)."""
        coords = {}
        for d in self.destinations:
            if len(d) > 1:  # more than its id: it may carry coordinates
                at = coordinates(d)
                if at is not None:
                    coords[d["id"]] = at
        store_coords = {k: (o.latitude, o.longitude) for k, o in self.objectstores.items()}
        order = tuple(self.tpv_order())
        return RankQuery(
            self.job_info.job(),
            order,
            Inputs.of(self.datasets, store_coords),
            coords,
            self.job_id,
            self.mode,
            tuple(_complete(self.fallback_order, list(order))) if self.fallback_order else None,
            None if self.tpv_scores is None else score_levels(order, self.tpv_scores),
        )


def _complete(first: list[str], ids: list[str]) -> list[str]:
    """`first` (candidate ids only, each once), then the other `ids` in their order: always a
    permutation of `ids`."""
    known = set(ids)
    order = list(dict.fromkeys(i for i in first if i in known))
    placed = set(order)
    return order + [i for i in ids if i not in placed]


class MetricAges(BaseModel):
    cluster_usage_s: float | None = None
    queue_s: float | None = None
    run_time_s: float | None = None
    outcomes_s: float | None = None
    carbon_intensity_s: float | None = None


class DestinationExplanation(BaseModel):
    id: str
    rank: int
    site: str
    state: str = Field(description="fresh | stale | cannot_fit")
    transfer_s: float
    wait_s: float | None = Field(description="null when the job can never fit")
    run_s: float
    p_success: float
    preference_penalty_s: float
    carbon_kg: float = Field(description="kg CO2eq of one attempt (0 when no intensity is known)")
    carbon_s: float = Field(description="the carbon term: carbon_kg x ranking.carbon_s_per_kg")
    expected_s: float | None = Field(description="null when the destination is not ranked by it")
    metric_ages: MetricAges
    terms: dict[str, str] = Field(description="where each term came from")
    reason: str


class Explanation(BaseModel):
    source: str
    source_error: str | None = None
    degraded: bool
    summary: str
    destinations: list[DestinationExplanation]


class RankResponse(BaseModel):
    sorted_destinations: list[str]
    explanation: Explanation | None = None

    def to_json(self, indent: int | None = None) -> str:
        """The wire format: `explanation` only when asked for; nulls inside it kept."""
        exclude = {"explanation"} if self.explanation is None else None
        return self.model_dump_json(exclude=exclude, indent=indent)
