"""Request and response bodies of the ARBO endpoints (pydantic v2: bad input answers 422)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Objective = Literal["fastest", "cheapest", "cheapest_within_time", "fastest_within_cost"]
TaskName = Field(min_length=1, max_length=255, description="stable name of the workflow task")
# Beyond this nobody runs one task: a typo (ms for s, cores for workers) rather than a plan.
ABSURD_S = 100_000
# Durations under a millisecond are no measurement (a subnormal like 5e-324 passed `gt=0` and
# made every later fit of the task fail); sizes are bounded so their logarithms and ratios stay
# finite whatever unit the caller uses.
MIN_SECONDS = 1e-3
MIN_INPUT_SIZE = 1e-6
MAX_INPUT_SIZE = 1e18
InputSize = Field(
    default=None,
    ge=MIN_INPUT_SIZE,
    le=MAX_INPUT_SIZE,
    description="any unit, used consistently",
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SLO(_Body):
    max_seconds: float | None = Field(default=None, ge=MIN_SECONDS, le=1e12)
    max_cost: float | None = Field(default=None, ge=1e-12, le=1e18)
    price_per_worker_second: float | None = Field(
        default=None,
        ge=1e-12,
        le=1e12,
        description="cost = s x duration x price; 1.0 (worker-seconds) if unset",
    )
    confidence: float | None = Field(
        default=None, ge=0.5, lt=1, description="probability the limits hold for one run"
    )


class ParallelismRequest(_Body):
    task: str = TaskName
    default_s: int = Field(ge=1, le=ABSURD_S, description="what the author would run without us")
    max_s: int | None = Field(default=None, ge=1, le=ABSURD_S)
    input_size: float | None = InputSize
    objective: Objective | None = Field(
        default=None,
        description=(
            "fastest | cheapest | cheapest_within_time | fastest_within_cost; default: "
            "cheapest_within_time with slo.max_seconds, fastest_within_cost with slo.max_cost, "
            "else fastest"
        ),
    )
    slo: SLO | None = None
    site: str | None = Field(default=None, max_length=255, description="site whose load to use")
    load: float | None = Field(
        default=None, ge=0, le=1, description="busy fraction of the site's CPUs; overrides site"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ParallelismRequest:
        slo = self.slo or SLO()
        if self.objective == "cheapest_within_time" and slo.max_seconds is None:
            raise ValueError("objective cheapest_within_time needs slo.max_seconds")
        if self.objective == "fastest_within_cost" and slo.max_cost is None:
            raise ValueError("objective fastest_within_cost needs slo.max_cost")
        if self.max_s is not None and self.default_s > self.max_s:
            raise ValueError(f"default_s ({self.default_s}) must not exceed max_s ({self.max_s})")
        return self

    def resolved_objective(self) -> str:
        if self.objective:
            return self.objective
        if self.slo and self.slo.max_seconds is not None:
            return "cheapest_within_time"
        if self.slo and self.slo.max_cost is not None:
            return "fastest_within_cost"
        return "fastest"


class ParallelismResponse(BaseModel):
    s: int
    predicted_seconds: float | None = Field(description="expected duration at s; null: no data")
    # a list of two, not a tuple: FastAPI writes a tuple as `items: [...]`, which is not a valid
    # schema in OpenAPI 3.1
    predicted_interval: list[float] | None = Field(
        min_length=2,
        max_length=2,
        description="central interval of one run's duration at the confidence level",
    )
    predicted_cost: float | None
    reason: str
    objective: str
    confidence: float
    slo_met: bool | None = Field(description="null: no SLO asked or nothing known yet")
    exploring: bool
    runs: int = Field(description="successful runs the decision is based on")
    load: float | None = Field(description="load used as a feature; send it back in feedback")


class FeedbackRequest(_Body):
    task: str = TaskName
    s: int = Field(ge=1, le=ABSURD_S)
    seconds: float = Field(
        ge=MIN_SECONDS, description="wall-clock duration of the task with s workers"
    )
    input_size: float | None = InputSize
    load: float | None = Field(default=None, ge=0, le=1)
    succeeded: bool = True
    site: str | None = Field(default=None, max_length=255)


class FeedbackResponse(BaseModel):
    task: str
    run_id: int
    runs: int
    succeeded_runs: int


class TaskInfo(BaseModel):
    task: str
    runs: int
    succeeded_runs: int
    window_runs: int = Field(description="successful runs in the fitting window")
    model: dict | None = Field(description="fitted Amdahl parameters and residual GP; null if none")
    last_run_at: float | None
