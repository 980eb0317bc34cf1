"""What a simulation run hands back: every measured job with its attempts, and the run's totals.

Kept apart from the engine so that the report reads results without importing the event loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from broker.sim.pools import Task
from broker.sim.workload import Job


@dataclass
class JobRecord:
    job: Job
    attempts: list[Task] = field(default_factory=list)
    outcome: str = "pending"  # ok | failed | unfinished
    finished: float = math.nan

    @property
    def turnaround(self) -> float:
        return self.finished - self.job.submit


@dataclass
class Result:
    scenario: str
    policy: str
    seed: int
    records: list[JobRecord]
    start: float
    end_of_window: float
    utilisation: float
    timeline: dict[str, list[tuple[float, int, int]]]  # site -> (t_h, idle, running)
    rank_calls: int = 0
    views_built: int = 0
    max_overcommit: float = 0  # most negative free resource ever seen (0: never exceeded)
    # site -> kg CO2eq per core-second and per GPU-second (sites with a carbon intensity)
    kg_per_s: dict[str, tuple[float, float]] = field(default_factory=dict)
