"""The event loop and the pools: conservation, capacity, deterministic replay, forks, and one
place where slots are taken and given back."""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

import pytest

import broker.sim
from broker.sim import pools
from broker.sim.policies import ALL_POLICIES
from broker.sim.pools import Machines
from broker.sim.report import summarize
from broker.sim.runner import new_simulation, parse_policy, run_all, simulate, simulate_policies
from broker.sim.scenario import load_scenario
from tests.support.sim_scenarios import scenario_file


@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_every_job_finishes_or_is_reported_and_capacity_holds(small, policy, monkeypatch):
    claim = pools.SiteState.claim

    def checked_claim(self, task, i):
        claim(self, task, i)
        assert all(f[0] >= 0 and f[1] >= 0 and f[2] >= 0 for f in self.free), "over capacity"
        assert self.busy_cores <= self.total[0]

    monkeypatch.setattr(pools.SiteState, "claim", checked_claim)
    result = simulate(small, policy, seed=3)
    sim_jobs = [j for j in new_simulation(small, policy, 3).jobs if j.measured]
    assert len(result.records) == len(sim_jobs) > 100
    outcomes = Counter(r.outcome for r in result.records)
    assert set(outcomes) <= {"ok", "failed"}  # drained: nothing left unfinished
    for r in result.records:
        assert 1 <= len(r.attempts) <= small.max_attempts
        if r.outcome == "ok":
            assert not r.attempts[-1].fails and r.turnaround > 0
        else:
            assert len(r.attempts) == small.max_attempts
    assert result.max_overcommit == 0


def test_jobs_still_running_at_the_hard_stop_are_reported_unfinished(tmp_path):
    sc = load_scenario(scenario_file(tmp_path, drain_h=0.05))
    result = simulate(sc, "tpv_default", seed=1)
    outcomes = Counter(r.outcome for r in result.records)
    assert outcomes["unfinished"] > 0
    assert sum(outcomes.values()) == len(result.records)
    assert summarize(result)["unfinished_jobs"] == outcomes["unfinished"]


def test_same_seed_same_result_and_fork_equals_a_fresh_run(small):
    fresh = [summarize(simulate(small, p, seed=7)) for p in ("weighted_random", "broker")]
    forked = [summarize(r) for r in simulate_policies(small, ["weighted_random", "broker"], 7)]
    again = [summarize(r) for r in simulate_policies(small, ["weighted_random", "broker"], 7)]
    assert fresh == forked == again
    other = summarize(simulate(small, "broker", seed=8))
    assert other != fresh[1]


def test_parallel_run_equals_serial_run(tmp_path):
    path = scenario_file(tmp_path)
    specs = [parse_policy("tpv_default"), parse_policy("least_loaded")]
    serial = run_all([path], specs, seeds=2, workers=1)
    parallel = run_all([path], specs, seeds=2, workers=2)
    # as text: a figure without jobs to measure is NaN, which never equals itself once pickled
    assert [(r.policy, r.seed, json.dumps(r.summary)) for r in serial] == [
        (r.policy, r.seed, json.dumps(r.summary)) for r in parallel
    ]


def test_machines_take_and_give_back_one_machine_at_a_time():
    m = Machines([[4, 8192.0, 0], [16, 65536.0, 1]])
    assert m.first_fit(8, 1024.0, 0) == 1  # the first machine that holds the whole job
    assert m.first_fit(2, 1024.0, 1) == 1  # a GPU only the second one has
    assert m.first_fit(32, 1.0, 0) == -1
    m.claim(1, 8, 1024.0, 1)
    assert m.free == [[4, 8192.0, 0], [8, 64512.0, 0]] and m.most_cores() == 8
    twin = m.copy()
    twin.claim(0, 4, 8192.0, 0)
    assert m.free[0] == [4, 8192.0, 0]  # a replay on a copy leaves the pool alone
    assert twin.lowest() == 0 and twin.first_fit(4, 1.0, 0) == 1
    m.release(1, 8, 1024.0, 1)
    assert m.free == [[4, 8192.0, 0], [16, 65536.0, 1]]


def test_the_oracle_replays_the_pools_own_slots_and_cycles(small, monkeypatch):
    """The oracle's replay claims and releases through `Machines` on a copy, and asks the pool
    when its next negotiation is: on a pool with a free slot and nothing queued, a job starts
    at the first cycle after it is staged."""
    sim = new_simulation(small, "oracle", 0)
    step = small.negotiation_interval_s
    sim.schedule_all()
    sim.advance(sim.start + 1800)
    calls = Counter()

    def counting(name):
        real = getattr(Machines, name)

        def counted(self, *args):
            calls[name] += 1
            return real(self, *args)

        return counted

    for name in ("claim", "release"):
        monkeypatch.setattr(Machines, name, counting(name))
    for name, site in sim.sites.items():
        tick = site.next_negotiation(sim.now, step)
        assert sim.now < tick <= sim.now + step and site.next_negotiation(tick, step) == tick + step
        before = [list(f) for f in site.free]
        start = sim.policy._start(name, sim.now, sim.now, (1, 1024.0, 0), float("inf"))
        assert site.free == before  # the pool itself is untouched
        idle = not site.idle and not site.staging and site.negotiation_due is None
        if idle and site.machines.first_fit(1, 1024.0, 0) >= 0:
            assert start == tick
        else:
            assert start >= tick
    assert calls["claim"] > 0 and calls["release"] > 0


def test_the_simulator_imports_without_a_cycle():
    """No module of broker/sim imports (even only for type checking) one that imports it back:
    the engine takes a policy factory; policies and the oracle read the simulation."""
    root = Path(broker.sim.__file__).parent
    graph = {}
    for path in root.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("broker.sim."):
                deps.add(node.module.removeprefix("broker.sim."))
        graph[path.stem] = deps

    def reaches(start, goal, seen=()):
        return any(
            d == goal or (d not in seen and reaches(d, goal, (*seen, d))) for d in graph[start]
        )

    assert graph["engine"] and "policies" not in graph["engine"]
    assert [m for m in graph if reaches(m, m)] == []


def test_jobs_lost_in_an_outage_are_resubmitted_in_the_order_they_started(tmp_path, monkeypatch):
    """Galaxy notices every job lost in an outage at the same moment; they are resubmitted in
    the order the pool started them, not in an order that depends on where the objects happen
    to live in memory (which made a policy's figures depend on the policies run before it)."""
    from broker.sim.galaxy_events import GalaxyEvents

    outage = {"site": "a", "start_h": 0.6, "duration_h": 0.5}  # where TPV sends every job
    long_runs = {"small": {"share": 1, "cores": 1, "mem_gb": 2, "run_median_s": 1800}}
    sc = load_scenario(scenario_file(tmp_path, outages=[outage], tools=long_runs))
    routed = []
    route = GalaxyEvents.route

    def logged(self, job, attempt):
        routed.append((self.now, self.records[job.id].attempts[-1] if attempt else None))
        route(self, job, attempt)

    monkeypatch.setattr(GalaxyEvents, "route", logged)
    result = simulate(sc, "tpv_default", seed=0)
    detect = result.start + 0.6 * 3600 + sc.outage_detect_s
    again = [
        prev for t, prev in routed if t == detect and prev is not None and prev.state == "lost"
    ]
    assert len(again) > 10 and len({a.started for a in again}) < len(again)  # ties to break
    order = [(a.started, a.staged, a.routed) for a in again]
    assert order == sorted(order)
