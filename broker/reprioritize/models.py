"""Request and response models of ``POST /reprioritize`` (pydantic v2).

Validation lives here so a bad request never reaches the numerics: non-finite numbers, empty
lists, points of different dimension and repeated task ids are all answered with a 422 whose
message names the offending field (``completed[3].x``), because the caller is a workflow
script whose author needs to find the bad row quickly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# Task ids are EQSQL's integer task ids or any string the workflow uses; they are echoed back
# with the type they came in, and must stay distinct once written as JSON object keys.
TaskId = int | str
# Finite, and far from overflow: the surrogate squares and scales these (1e200 squared is inf).
MAX_ABS = 1e100
Finite = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_ABS, le=MAX_ABS)]
Point = Annotated[list[Finite], Field(min_length=1, max_length=1000)]

MAX_COMPLETED = 20_000
MAX_PENDING = 100_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompletedTask(_Model):
    """A task whose result is known."""

    id: TaskId
    x: Point = Field(description="the task's input point")
    y: Finite = Field(description="the task's result (finite)")


class PendingTask(_Model):
    """A task still waiting in the queue."""

    id: TaskId
    x: Point = Field(description="the task's input point")


class ReprioritizeRequest(_Model):
    completed: list[CompletedTask] = Field(min_length=1, max_length=MAX_COMPLETED)
    pending: list[PendingTask] = Field(min_length=1, max_length=MAX_PENDING)
    goal: Literal["minimize", "maximize"] = "minimize"
    acquisition: Literal["ei", "ucb", "mean"] = Field(
        default="ei",
        description="ei: expected improvement; ucb: optimistic bound mean -/+ 2 std; "
        "mean: the predicted mean only (pure exploitation)",
    )

    # Checked per field so the 422's "loc" points at the list that is wrong, and the message at
    # the row: ["body", "pending"] + "pending[3].x has 3 values but completed[0].x has 4".
    @field_validator("completed")
    @classmethod
    def _completed_consistent(cls, completed: list[CompletedTask]) -> list[CompletedTask]:
        _check_rows("completed", completed, len(completed[0].x), {})
        return completed

    @field_validator("pending")
    @classmethod
    def _pending_consistent(
        cls, pending: list[PendingTask], info: ValidationInfo
    ) -> list[PendingTask]:
        completed: list[CompletedTask] | None = info.data.get("completed")
        if not completed:  # completed is invalid itself; its own error is reported
            return pending
        seen = {str(t.id): f"completed[{i}]" for i, t in enumerate(completed)}
        _check_rows("pending", pending, len(completed[0].x), seen)
        return pending


def _check_rows(
    field: str, tasks: Sequence[CompletedTask | PendingTask], dim: int, seen: dict[str, str]
) -> None:
    for i, task in enumerate(tasks):
        where = f"{field}[{i}]"
        if len(task.x) != dim:
            raise ValueError(
                f"{where}.x has {len(task.x)} values but completed[0].x has {dim}: "
                "all points must have the same dimension"
            )
        key = str(task.id)
        if key in seen:
            raise ValueError(f"{where}.id {task.id!r} repeats {seen[key]}.id: ids must be unique")
        seen[key] = where


class PredictionOut(_Model):
    mean: float
    std: float


class ReprioritizeExplanation(_Model):
    """Why this order: the model that produced it and each pending task's score."""

    kernel: str = Field(description="fitted kernel (scaled inputs, standardised results)")
    hyperparameters_fitted: bool = Field(
        description="False when the data cannot identify them (under 3 distinct points or "
        "constant results): prior values were used"
    )
    n_completed: int
    n_train: int = Field(description="completed points that condition the posterior")
    best_y: float
    goal: str
    acquisition: str
    scores: dict[str, float] = Field(description="acquisition value per pending id (higher first)")
    seconds: float


class ReprioritizeResponse(_Model):
    order: list[TaskId] = Field(description="pending ids, most promising first")
    priorities: dict[str, int] = Field(
        description="integer priority per pending id for EQSQL update_priorities "
        "(higher runs first; the last task gets 1)"
    )
    predictions: dict[str, PredictionOut]
    explanation: ReprioritizeExplanation | None = None
