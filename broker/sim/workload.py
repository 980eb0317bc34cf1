"""The job stream: arrivals (diurnal Poisson plus bursts), tools, inputs and every random draw a
job will need, made up front from the seed, so every policy sees exactly the same jobs (common
random numbers: a job is as long, and an attempt as unlucky, whichever policy routes it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from broker.sim.scenario import Scenario

HOUR = 3600.0


@dataclass
class Job:
    id: int
    submit: float  # absolute simulated seconds
    tool: str
    datasets: list[tuple[str, float]]  # (object store, bytes)
    run_factor: float  # the job's own size: run time = median x factor x site speed
    fail_u: list[float]  # one uniform per attempt: the attempt fails if u < p_fail
    choice_u: list[float]  # one uniform per attempt, for randomised policies
    measured: bool  # submitted inside the measured window (not history)


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per (seed, purpose), stable across Python runs."""
    return np.random.default_rng([seed, sum((i + 1) * ord(c) for i, c in enumerate(stream))])


def _rate(scenario: Scenario, t_rel: float) -> float:
    """Jobs per second at `t_rel` seconds from the measured start (a midnight): a daily cycle
    peaking at 14:00."""
    a = scenario.arrivals
    phase = 2 * math.pi * ((t_rel / HOUR) % 24 - 8) / 24
    return a.jobs_per_hour / HOUR * (1 + a.diurnal_amplitude * math.sin(phase))


def generate(scenario: Scenario, seed: int, start: float) -> list[Job]:
    """Jobs from `start - history_h` to `start + duration_h` (absolute seconds), by submit time."""
    rng = rng_for(seed, "workload")
    tools = sorted(scenario.tools)
    shares = np.array([scenario.tools[t].share for t in tools], dtype=float)
    shares /= shares.sum()
    stores = sorted(scenario.objectstores)
    weights = np.array([scenario.objectstores[s].weight for s in stores], dtype=float)
    weights = (
        weights / weights.sum() if weights.sum() > 0 else np.full(len(stores), 1 / len(stores))
    )
    t0, t1 = -scenario.history_h * HOUR, scenario.duration_h * HOUR

    arrivals: list[tuple[float, str]] = []
    peak = scenario.arrivals.jobs_per_hour / HOUR * (1 + scenario.arrivals.diurnal_amplitude)
    if peak > 0:  # thinning of a homogeneous Poisson process at the peak rate
        t = t0
        while True:
            t += rng.exponential(1 / peak)
            if t >= t1:
                break
            if rng.random() * peak <= _rate(scenario, t):
                arrivals.append((t, tools[rng.choice(len(tools), p=shares)]))
    for burst in scenario.arrivals.bursts:
        names = sorted(burst.tools) or tools
        p = np.array([burst.tools.get(n, 0.0) for n in names] if burst.tools else shares)
        p = p / p.sum()
        b0 = burst.start_h * HOUR
        for _ in range(burst.jobs):
            arrivals.append(
                (b0 + rng.random() * burst.duration_h * HOUR, names[rng.choice(len(names), p=p)])
            )
    arrivals.sort()

    attempts = scenario.max_attempts
    jobs = []
    for i, (t, tool_id) in enumerate(arrivals):
        tool = scenario.tools[tool_id]
        datasets = []
        for _ in range(tool.inputs.count):
            size = (
                tool.inputs.size_median_mb * 1e6 * math.exp(rng.normal(0, tool.inputs.size_sigma))
            )
            datasets.append((stores[rng.choice(len(stores), p=weights)], size))
        jobs.append(
            Job(
                id=i,
                submit=start + t,
                tool=tool_id,
                datasets=datasets,
                run_factor=math.exp(rng.normal(0, tool.run_sigma)),
                fail_u=rng.random(attempts).tolist(),
                choice_u=rng.random(attempts).tolist(),
                measured=t >= 0,
            )
        )
    return jobs
