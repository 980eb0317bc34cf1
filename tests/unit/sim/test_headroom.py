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


def _summary(broker: dict, fair_mean: float = 800.0) -> dict:
    def pol(mean, p95, **kw):
        return {"mean_turnaround_s": mean, "p95_turnaround_s": p95, "p99_turnaround_s": 2 * p95,
                "short_slowdown": 1.5, "large_mean_turnaround_s": 8000.0,
                "failed_attempts": 40.0, "failed_jobs": 1.0, **kw}  # fmt: skip

    return {
        "calm": {
            "tpv_default": pol(5000, 9000),
            "weighted_random": pol(1000, 4000),
            "oracle": pol(100, 200),  # better at everything: no target looks at it
            "oracle_fair": pol(fair_mean, 3000),
            "broker": pol(**broker),
        }
    }


def test_the_benchmark_targets_are_the_gap_to_oracle_fair_and_ignore_the_oracle():
    from benchmarks.scheduling import headroom, targets

    def judged(**broker):
        return {name.split(": ", 1)[1]: ok for name, ok, _ in targets(_summary(broker))}

    # 850 s closes 75% of 1000 -> 800; 3400 s closes 60% of 4000 -> 3000
    assert all(judged(mean=850, p95=3400).values())
    missed = judged(mean=860, p95=3500, failed_jobs=1.5, large_mean_turnaround_s=8500.0)
    assert [k for k, ok in missed.items() if not ok] == [
        "mean: 75% of the gap",
        "p95: 60% of the gap",
        "large_mean_turnaround_s within 5% of weighted random's",
        "failed_jobs <= weighted random's",
    ]
    assert judged(mean=850, p95=3400, large_mean_turnaround_s=8399.0)[
        "large_mean_turnaround_s within 5% of weighted random's"
    ]
    assert not judged(mean=850, p95=3400, p99_turnaround_s=8001.0)[
        "p99 turnaround <= weighted random's"
    ]
    lines = headroom(
        {s: _summary({"mean": 850, "p95": 3400})["calm"] for s in ("burst", "data-heavy")},
        {"burst": 500.0},
    )
    assert "lower bound 500 s (50% lower)" in lines[0]


def test_a_gap_under_five_percent_asks_for_at_most_oracle_fair():
    from benchmarks.scheduling import targets

    summary = _summary({"mean": 970, "p95": 3400}, fair_mean=960.0)  # a 4% gap
    mean = next(ok for name, ok, _ in targets(summary) if "mean:" in name)
    assert not mean  # 970 s > oracle_fair's 960 s, though it closes 75% of the gap
    summary = _summary({"mean": 955, "p95": 3400}, fair_mean=960.0)
    assert next(ok for name, ok, _ in targets(summary) if "mean:" in name)
