"""Run scenarios x policies x seeds (in parallel over (scenario, seed)), deterministically.

This is where a simulation is given its policies (`make_policy`): the engine takes a factory,
and the policies and the oracle read the simulation, so nothing imports in a circle.

A policy is named, optionally with broker settings to change for it (a what-if run):
`broker:preference_level_s=0` (keys without a dot are under `ranking.`; dotted keys start at
the settings root, e.g. `metrics.staleness_s=120`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from broker.config import Settings, deep_merge
from broker.progress import bar
from broker.sim.engine import HISTORY_POLICY, Simulation
from broker.sim.network import broker_settings
from broker.sim.oracle import Oracle, job_lower_bounds, lower_bound_s
from broker.sim.oracle_fair import OracleFair
from broker.sim.policies import ALL_POLICIES, CLASSES, Policy
from broker.sim.report import summarize
from broker.sim.results import Result
from broker.sim.scenario import Scenario, load_scenario

_CLASSES = {**CLASSES, Oracle.name: Oracle, OracleFair.name: OracleFair}


def make_policy(name: str, sim: Simulation) -> Policy:
    """The policy (or reference) called `name`, routing on `sim`."""
    try:
        return _CLASSES[name](sim)
    except KeyError:
        raise ValueError(
            f"unknown policy {name!r}; choose from {', '.join(ALL_POLICIES)}"
        ) from None


def new_simulation(
    scenario: Scenario, policy: str, seed: int, settings: Settings | None = None
) -> Simulation:
    """A simulation of one seed routed by `policy`, with the settings an administrator would
    write for the scenario's network unless others are given."""
    return Simulation(scenario, policy, seed, settings or broker_settings(scenario), make_policy)


def simulate_policies(
    scenario: Scenario, policies: list[str], seed: int, settings: Settings | None = None
) -> list[Result]:
    """Run `policies` on the same jobs, network and history (one seed)."""
    base = new_simulation(scenario, HISTORY_POLICY, seed, settings)
    base.schedule_all()
    base.advance(base.start)
    return [base.fork(name).finish() for name in policies]


def simulate(
    scenario: Scenario, policy: str, seed: int, settings: Settings | None = None
) -> Result:
    """One policy from the start of the history (no shared history with other runs)."""
    sim = new_simulation(scenario, policy, seed, settings)
    sim.schedule_all()
    return sim.finish()


@dataclass(frozen=True)
class PolicySpec:
    label: str
    name: str
    overrides: dict = field(default_factory=dict)


def parse_policy(spec: str) -> PolicySpec:
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in ALL_POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(ALL_POLICIES)}")
    overrides: dict = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"policy {spec!r}: expected key=value, got {item!r}")
        path = key.split(".") if "." in key else ["ranking", key]
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(value)
    if overrides and name != "broker":
        raise ValueError(f"policy {spec!r}: only the broker takes settings")
    return PolicySpec(spec, name, overrides)


@dataclass
class RunSummary:
    scenario: str
    policy: str
    seed: int
    summary: dict
    turnaround_by_job: dict[int, float]  # job id -> turnaround, the jobs that succeeded
    timeline: dict
    lower_bound_s: float = float("nan")  # of the (scenario, seed): `oracle.lower_bound_s`
    # job id -> (its lower bound, its cores), every measured job: the same for every policy of
    # a (scenario, seed), what the per-class figures and plots sort jobs by
    job_facts: dict[int, tuple[float, int]] = field(default_factory=dict)

    @property
    def turnarounds(self) -> list[float]:
        return list(self.turnaround_by_job.values())


def _settings_for(scenario: Scenario, spec: PolicySpec) -> Settings:
    if not spec.overrides:
        return broker_settings(scenario)
    merged = scenario.model_copy(deep=True)
    merged.broker = deep_merge(merged.broker, spec.overrides)
    return broker_settings(merged)


def run_seed(
    scenario: Scenario,
    specs: list[PolicySpec],
    seed: int,
    on_policy_done: Callable[[], object] | None = None,
) -> list[RunSummary]:
    """One seed of one scenario: the shared history once, then each policy from a copy
    (`on_policy_done` is called after each, for progress)."""
    base = new_simulation(scenario, HISTORY_POLICY, seed)
    base.schedule_all()
    base.advance(base.start)
    job_bounds = job_lower_bounds(base)
    bound = lower_bound_s(base, job_bounds)
    facts = {
        j.id: (job_bounds[j.id], scenario.tools[j.tool].cores) for j in base.jobs if j.measured
    }
    out = []
    for spec in specs:
        settings = _settings_for(scenario, spec) if spec.overrides else None
        result = base.fork(spec.name, settings, spec.label).finish()
        out.append(
            RunSummary(
                scenario=scenario.name,
                policy=spec.label,
                seed=seed,
                summary=summarize(result, job_bounds),
                turnaround_by_job={
                    r.job.id: r.turnaround for r in result.records if r.outcome == "ok"
                },
                timeline=result.timeline,
                lower_bound_s=bound,
                job_facts=facts,
            )
        )
        if on_policy_done is not None:
            on_policy_done()
    return out


def _task(args: tuple[str, list[PolicySpec], int]) -> list[RunSummary]:
    path, specs, seed = args
    return run_seed(load_scenario(path), specs, seed)


def run_all(
    paths: list[str | Path],
    specs: list[PolicySpec],
    seeds: int,
    workers: int | None = None,
    seed_start: int = 0,
) -> list[RunSummary]:
    """Every scenario x seed x policy, seeds `seed_start` .. `seed_start + seeds - 1`; the
    result order does not depend on `workers`. Progress (one step per policy run) goes to a
    terminal's stderr only (`broker.progress`)."""
    if seeds < 1 or seed_start < 0:
        raise ValueError(f"need seeds >= 1 and seed_start >= 0, got {seeds} and {seed_start}")
    for p in paths:
        load_scenario(p)  # fail early, in this process, on a bad file
    tasks = [(str(p), specs, seed) for p in paths for seed in range(seed_start, seed_start + seeds)]
    workers = workers or min(len(tasks), os.cpu_count() or 1)
    desc = f"simulate {len(paths)} scenario(s) x {seeds} seed(s)"
    with bar(len(tasks) * len(specs), desc) as progress:
        if workers <= 1:
            chunks = [
                run_seed(load_scenario(path), sp, seed, lambda: progress.update(1))
                for path, sp, seed in tasks
            ]
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_task, t) for t in tasks]
                for done in as_completed(futures):
                    done.result()  # a failed run stops here, with its own error
                    progress.update(len(specs))
                chunks = [f.result() for f in futures]
    runs = [r for chunk in chunks for r in chunk]
    order = {s.label: i for i, s in enumerate(specs)}
    scen_order: dict[str, int] = {}
    for r in runs:
        scen_order.setdefault(r.scenario, len(scen_order))
    runs.sort(key=lambda r: (scen_order[r.scenario], order[r.policy], r.seed))
    return runs
