"""Headroom references: the oracle and the lower bound; the benchmark targets ignore them."""

from __future__ import annotations

import pytest

from broker.sim.oracle import job_lower_bound_s, lower_bound_s
from broker.sim.report import summarize
from broker.sim.runner import new_simulation, parse_policy, run_seed, simulate_policies
from broker.sim.scenario import load_scenario
from tests.support.sim_scenarios import scenario_file


def test_oracle_is_deterministic_and_never_routes_to_a_site_that_is_down(tmp_path):
    outage = {"site": "a", "start_h": 0.2, "duration_h": 1}
    sc = load_scenario(scenario_file(tmp_path, outages=[outage]))

    def routes(result):
        return [(r.job.id, a.attempt, a.dest, a.routed) for r in result.records for a in r.attempts]

    first, again = (simulate_policies(sc, ["oracle"], 5)[0] for _ in range(2))
    assert routes(first) == routes(again) and summarize(first) == summarize(again)
    down = (first.start + 0.2 * 3600, first.start + 1.2 * 3600)
    to_a = [t for _, _, dest, t in routes(first) if dest == "dest_a"]
    assert to_a  # it does use the site, before and after the outage
    assert not [t for t in to_a if down[0] <= t < down[1]]


def test_oracle_beats_weighted_random_and_the_lower_bound_is_below_every_policy(small):
    specs = [parse_policy(p) for p in ("tpv_default", "weighted_random", "broker", "oracle")]
    for seed in (0, 1):
        runs = {r.policy: r for r in run_seed(small, specs, seed)}
        mean = {p: r.summary["mean_turnaround_s"] for p, r in runs.items()}
        assert mean["oracle"] <= mean["weighted_random"]
        bound = runs["oracle"].lower_bound_s
        assert {r.lower_bound_s for r in runs.values()} == {bound}  # one per (scenario, seed)
        assert 0 < bound <= min(mean.values())
    sim = new_simulation(small, "oracle", 0)
    measured = [j for j in sim.jobs if j.measured]
    for job in measured[:20]:
        cands = [sim.network.site_of_dest[d] for d in sim.tpv[job.tool]]
        assert job_lower_bound_s(sim, job) == min(
            sim.network.transfer(job.datasets, s)[0] + sim.runs.run_s(job, s) for s in cands
        )
    assert lower_bound_s(sim) == pytest.approx(
        sum(job_lower_bound_s(sim, j) for j in measured) / len(measured)
    )


def test_each_job_takes_at_least_its_lower_bound(small):
    sim = new_simulation(small, "oracle", 2)
    sim.schedule_all()
    result = sim.finish()
    for r in result.records:
        if r.outcome == "ok":
            assert r.turnaround >= job_lower_bound_s(sim, r.job) - 1e-6


def test_the_benchmark_targets_ignore_the_oracle():
    from benchmarks.scheduling import headroom, targets

    def pol(mean, p95, failed):
        return {"mean_turnaround_s": mean, "p95_turnaround_s": p95, "failed_attempts": failed}

    summary = {
        s: {
            "tpv_default": pol(5000, 9000, 50),
            "weighted_random": pol(1000, 4000, 40),
            "original_broker": pol(1000, 4000, 40),
            "least_loaded": pol(1000, 4000, 40),
            "broker": pol(700, 3000, 10),
            "oracle": pol(600, 2500, 5),  # better at everything: it sees the true state
        }
        for s in ("burst", "data-heavy", "silent-failure")
    }
    assert all(ok for _, ok, _ in targets(summary))
    lines = headroom(summary, {"burst": 500.0, "data-heavy": 550.0})
    assert "oracle 600 s (40% lower)" in lines[0] and "lower bound 500 s (50% lower)" in lines[0]
