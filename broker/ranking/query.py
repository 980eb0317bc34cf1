"""What the ranking is asked, as plain domain objects.

The wire request (`broker.ranking.models.RankRequest`, TPV's JSON) is converted into these once,
at the edge; the ranking core and the simulator speak only these, so neither depends on how TPV
spells a field or on pydantic validation per decision. Not changed once built (plain slotted
classes, not frozen ones: a frozen dataclass costs a microsecond more per request to build).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from broker.ranking.transfer import Coordinates, Inputs
from metric_contract.measurements import BY_BROKER, BY_FALLBACK
from metric_contract.units import MB_PER_GB  # TPV's `mem` is GB; every metric is MB


@dataclass(slots=True)
class Job:
    """The resources a job asks for, memory in MB."""

    tool_id: str | None
    cores: int
    mem_mb: float
    gpus: int

    @classmethod
    def from_tpv(cls, tool_id: str | None, mem_gb: float, cores: int, gpus: int) -> Job:
        return cls(tool_id, cores, mem_gb * MB_PER_GB, gpus)


# The rank snippet's modes and who chose a job's destination: names of the decision log.
Mode = Literal["enforce", "shadow"]  # metric_contract ENFORCE, SHADOW, spelled for pydantic
ENFORCE: Mode = "enforce"
SHADOW: Mode = "shadow"
BROKER, FALLBACK = BY_BROKER, BY_FALLBACK


@dataclass(slots=True)
class RankQuery:
    """One job's candidates in TPV's order, where the request places them, and its inputs.

    `job_id`: Galaxy's (the same for every attempt of a job), None when the caller sends none.
    `mode`: `enforce`, the job goes to the broker's first choice; `shadow`, to the fallback's.
    `fallback`: the administrator's own order of every candidate (None: TPV's, `order`); it is
    the answer when the broker cannot rank, and where a job goes in shadow mode."""

    job: Job
    order: tuple[str, ...]
    inputs: Inputs
    # A candidate's coordinates as the request gives them (only read for a destination the
    # config does not place).
    coords: Mapping[str, Coordinates] = field(default_factory=dict)
    job_id: int | None = None
    mode: Mode = ENFORCE
    fallback: tuple[str, ...] | None = None
    # Each candidate's TPV score level, in `order`: 0 for the best score, 1 for the next lower
    # score, ... (`score_levels`); None when the caller sent no scores (positions are priced).
    levels: tuple[int, ...] | None = None

    def fallback_order(self) -> tuple[str, ...]:
        """The fallback's order of every candidate: the administrator's, else TPV's."""
        return self.order if self.fallback is None else self.fallback


def score_levels(order: tuple[str, ...], scores: Mapping[str, float]) -> tuple[int, ...]:
    """Each candidate's level among TPV's distinct tag scores, best first (scores 5, 3, 3, 1
    are levels 0, 1, 1, 2). A level, not a position, is what the administrator's tags say:
    TPV's sort puts equal scores in config order, which expresses no preference. A candidate
    without a score is one level below the lowest."""
    distinct = sorted({scores[i] for i in order if i in scores}, reverse=True)
    level = {score: n for n, score in enumerate(distinct)}
    return tuple(level[scores[i]] if i in scores else len(distinct) for i in order)
