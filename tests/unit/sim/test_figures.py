"""The tail and class figures (p99, short-job slowdown, large-job mean), the paired differences
of the plots, and the caller's seeds (`--seed-start`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from broker.cli import main
from broker.sim.plots import paired_differences
from broker.sim.pools import Task
from broker.sim.report import json_line, over_seeds, summarize
from broker.sim.results import JobRecord, Result
from broker.sim.runner import RunSummary, parse_policy, run_all, run_seed
from broker.sim.workload import Job
from tests.support.paths import ROOT
from tests.support.sim_scenarios import scenario_file


def _record(job_id: int, turnaround: float, cores: int, outcome: str = "ok") -> JobRecord:
    job = Job(job_id, 1000.0, "t", [], 1.0, [1.0], [0.5], True)
    task = Task(cores=cores, mem_mb=1.0, gpus=0, run_s=10.0, job=job, started=1000.0)
    return JobRecord(job, [task], outcome, 1000.0 + turnaround)


def _result(records: list[JobRecord]) -> Result:
    return Result("s", "p", 0, records, 0.0, 1.0, 0.5, {})


def test_short_slowdown_and_large_mean_take_only_their_class_and_the_jobs_that_succeeded():
    records = [
        _record(1, 600.0, 1),  # short (bound 300): slowdown 2
        _record(2, 400.0, 4),  # short (bound 100): slowdown 4
        _record(3, 5000.0, 16),  # large, not short (bound 1200)
        _record(4, 9000.0, 32),  # large, and short (bound 500): slowdown 18
        _record(5, 99999.0, 64, "failed"),  # failed for good: in no mean
        _record(6, 700.0, 2),  # bound exactly 600 s: not short
    ]
    bounds = {1: 300.0, 2: 100.0, 3: 1200.0, 4: 500.0, 5: 10.0, 6: 600.0}
    s = summarize(_result(records), bounds)
    assert s["short_slowdown"] == pytest.approx((2 + 4 + 18) / 3)
    assert s["large_mean_turnaround_s"] == pytest.approx((5000 + 9000) / 2)
    assert s["failed_jobs"] == 1
    ok = [600.0, 400.0, 5000.0, 9000.0, 700.0]
    assert s["p99_turnaround_s"] == pytest.approx(np.percentile(ok, 99))
    assert s["p95_turnaround_s"] <= s["p99_turnaround_s"] <= max(ok)
    # without the bounds, no slowdown (rather than a made-up one)
    assert math.isnan(summarize(_result(records))["short_slowdown"])


def test_a_seed_without_large_jobs_does_not_blank_the_mean_and_json_has_no_nan():
    with_large = summarize(_result([_record(1, 100.0, 16)]), {1: 50.0})
    without = summarize(_result([_record(1, 300.0, 1)]), {1: 5000.0})
    assert math.isnan(without["large_mean_turnaround_s"]) and math.isnan(without["short_slowdown"])
    both = over_seeds([with_large, without])
    assert both["large_mean_turnaround_s"] == 100.0  # over the seed that has one
    assert both["short_slowdown"] == 2.0
    assert both["mean_turnaround_s"] == 200.0  # the other figures over every seed
    none = over_seeds([without, without])
    line = json_line({"sc": {"p": none}})
    text = json.dumps(line, allow_nan=False)  # strict JSON: a figure without jobs is null
    assert json.loads(text)["scenarios"]["sc"]["p"]["large_mean_turnaround_s"] is None


def _run(policy: str, seed: int, turnarounds: dict[int, float]) -> RunSummary:
    return RunSummary("s", policy, seed, {}, turnarounds, {})


def test_paired_differences_pair_the_same_job_of_the_same_seed():
    by_policy = {
        "weighted_random": [
            _run("weighted_random", 0, {1: 100.0, 2: 50.0}),
            _run("w", 1, {1: 10.0}),
        ],
        "broker": [_run("broker", 0, {1: 40.0, 2: 80.0, 3: 5.0}), _run("broker", 1, {1: 30.0})],
    }
    # job 3 did not succeed under the reference: not paired; seed 1's job 1 is not seed 0's
    assert paired_differences(by_policy, "broker").tolist() == [-60.0, 20.0, 30.0]


def test_seed_start_runs_the_callers_seeds(tmp_path, small):
    path = scenario_file(tmp_path)
    specs = [parse_policy("weighted_random")]
    runs = run_all([path], specs, seeds=2, workers=1, seed_start=3)
    assert [r.seed for r in runs] == [3, 4]
    assert runs[0].summary == run_seed(small, specs, 3)[0].summary
    assert runs[0].summary != run_all([path], specs, seeds=1, workers=1)[0].summary
    facts = runs[0].job_facts  # every measured job: its lower bound and its tool's cores
    assert set(runs[0].turnaround_by_job) <= set(facts)
    assert {cores for _, cores in facts.values()} == {1, 12}
    assert all(bound > 0 for bound, _ in facts.values())
    with pytest.raises(ValueError, match="seed_start"):
        run_all([path], specs, seeds=1, seed_start=-1)


def test_simulate_command_takes_seed_start_and_prints_the_new_figures(tmp_path, capsys):
    path = str(scenario_file(tmp_path))
    argv = ["simulate", path, "--policies", "weighted_random", "--workers", "1"]
    assert main([*argv, "--seeds", "1", "--seed-start", "2"]) == 0
    out = capsys.readouterr()
    fig = json.loads(out.out.strip().splitlines()[-1])["scenarios"]["small"]["weighted_random"]
    assert {"p99_turnaround_s", "failed_jobs", "short_slowdown", "large_mean_turnaround_s"} <= set(
        fig
    )
    assert fig["p99_turnaround_s"] >= fig["p95_turnaround_s"]
    assert out.err == ""  # not a terminal: no progress bar
    assert main([*argv, "--seed-start", "-1"]) == 2
    assert "--seed-start" in capsys.readouterr().err


def test_the_scheduling_benchmark_takes_the_callers_seeds_and_reports_oracle_fair():
    from benchmarks.scheduling import JSON_POLICIES, SEEDS, parse_args

    args = parse_args(["--seeds", "2", "--seed-start", "7", "--workers", "1"])
    assert (args.seeds, args.seed_start, args.workers) == (2, 7, 1)
    assert (parse_args([]).seeds, parse_args([]).seed_start) == (SEEDS, 0)
    assert "oracle_fair" in JSON_POLICIES and "oracle" not in JSON_POLICIES
    with pytest.raises(SystemExit):
        parse_args(["--seed-start", "-3"])
    mine = sorted((ROOT / "examples" / "scenarios").glob("*.yaml"))[:1]
    assert parse_args([str(mine[0])]).scenarios == mine  # a scenario of the caller's
    assert len(parse_args([]).scenarios) == len(list(mine[0].parent.glob("*.yaml")))


def test_the_scheduling_benchmark_names_a_scenario_file_it_cannot_find(capsys):
    from benchmarks.scheduling import parse_args

    with pytest.raises(SystemExit):
        parse_args(["no/such/scenario.yaml"])
    assert "no such scenario file: no/such/scenario.yaml" in capsys.readouterr().err
