"""`oracle_fair`: the true state without the negotiation phase or the outcome of an attempt."""

from __future__ import annotations

import dataclasses

import pytest

from broker.sim.runner import new_simulation, parse_policy, run_seed
from broker.sim.scenario import load_scenario
from tests.support.sim_scenarios import scenario_file

# b is where the oracles send most small jobs; there it fails half of them
FAILING = [{"site": "b", "tool": "small", "probability": 0.5}]


def _at(sc, policy: str, after_s: float):
    sim = new_simulation(sc, policy, 0)
    sim.schedule_all()
    sim.advance(sim.start + after_s)
    return sim


def _choices(sim, fail_u: float) -> list[str]:
    """The policy's choice for each measured job of the window, were its draws `fail_u`."""
    out = []
    for job in [j for j in sim.jobs if j.measured][:60]:
        doomed = dataclasses.replace(job, fail_u=[fail_u] * len(job.fail_u))
        out.append(sim.policy.choose(doomed, 0, sim.now))
    return out


def test_oracle_fair_does_not_know_whether_an_attempt_will_fail(tmp_path):
    sc = load_scenario(scenario_file(tmp_path, failures=FAILING))
    fair = _at(sc, "oracle_fair", 60)  # before the burst: the pools have room
    assert _choices(fair, 0.0) == _choices(fair, 0.99)  # the draw is not read
    oracle = _at(sc, "oracle", 60)
    assert _choices(oracle, 0.0) != _choices(oracle, 0.99)  # the oracle's foresight, for contrast


def test_oracle_fair_does_not_know_the_negotiation_phase(small):
    for name, differs in (("oracle_fair", False), ("oracle", True)):
        sim = _at(small, name, 1800)  # the burst is under way: the pools have queues
        step = small.negotiation_interval_s
        starts = set()
        for shift in (0.0, 0.3, 0.7):
            for site in sim.sites.values():
                site.phase = shift * step
            starts.add(
                tuple(
                    sim.policy._start(s, sim.now, sim.now + 5, (1, 1024.0, 0), float("inf"))
                    for s in sim.sites
                )
            )
        assert (len(starts) > 1) == differs, name


def test_oracle_fair_costs_an_attempt_by_the_failure_probability(small, monkeypatch):
    sim = new_simulation(small, "oracle_fair", 0)
    job = next(j for j in sim.jobs if j.measured)
    monkeypatch.setattr(sim.runs, "failure_probability", lambda site, tool, t: (0.5, 0.4))
    now, start, run, retry = 100.0, 160.0, 1000.0, 300.0
    fails, cost = sim.policy._cost(job, 0, "a", run, now, start, retry, last=False)
    assert not fails and cost == pytest.approx(60 + 0.5 * 1000 + 0.5 * (400 + 300))
    # on the last attempt, failing for good costs the time left until the hard stop
    _, last = sim.policy._cost(job, 0, "a", run, now, start, retry, last=True)
    assert last == pytest.approx(60 + 500 + 0.5 * (400 + sim.hard_stop - now))


def test_oracle_fair_runs_next_to_the_others_and_beats_weighted_random(small):
    specs = [parse_policy(p) for p in ("weighted_random", "oracle", "oracle_fair")]
    runs = {r.policy: r.summary for r in run_seed(small, specs, 1)}
    assert runs["oracle_fair"]["mean_turnaround_s"] <= runs["weighted_random"]["mean_turnaround_s"]
    assert runs["oracle_fair"] != runs["oracle"]
