"""The report and the `simulate` command: the table, the JSON line last, the plots."""

from __future__ import annotations

import json
import math

from broker.cli import main
from broker.sim.report import LOWER_BOUND_KEY, aggregate, json_line, lower_bounds, table
from broker.sim.runner import parse_policy, run_seed
from tests.support.sim_scenarios import scenario_file


def test_simulate_command_prints_a_table_and_json_last(tmp_path, capsys):
    path = scenario_file(tmp_path)
    plots = tmp_path / "plots"
    argv = ["simulate", str(path), "--policies", "tpv_default", "broker", "oracle"]
    assert main([*argv, "--plot", str(plots), "--workers", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    data = json.loads(out[-1])
    small = data["scenarios"]["small"]
    assert set(small) == {"tpv_default", "broker", "oracle"}  # only policies under a scenario
    for v in small.values():
        assert {"mean_turnaround_s", "p95_turnaround_s", "failed_attempts", "bytes_km"} <= set(v)
        assert math.isfinite(v["mean_turnaround_s"])
    bound = data[LOWER_BOUND_KEY]["small"]
    assert 0 < bound <= min(v["mean_turnaround_s"] for v in small.values())
    assert any(line.startswith("tpv_default") for line in out)
    assert any(line.startswith("lower bound") for line in out)
    assert not any(line.startswith("oracle") and line.endswith("*") for line in out)
    assert sorted(p.name for p in plots.glob("*.png")) == [
        "small-classes.png",
        "small-data-moved.png",
        "small-queue-timeline.png",
    ]  # no paired difference without weighted random, the reference


def test_simulate_command_rejects_a_bad_policy(tmp_path, capsys):
    assert main(["simulate", str(scenario_file(tmp_path)), "--policies", "nope"]) == 2
    assert "unknown policy" in capsys.readouterr().err


def test_json_line_keeps_only_the_asked_keys_and_policies(small):
    runs = run_all_small(small)
    summary = aggregate(runs)
    line = json_line(summary, policies=("broker",))
    assert list(line) == ["scenarios"]  # the lower bound only when asked for
    assert list(line["scenarios"]["small"]) == ["broker"]
    bounds = lower_bounds(runs)
    assert set(json_line(summary, bounds=bounds)) == {"scenarios", LOWER_BOUND_KEY}
    assert "lower bound" in table(summary, bounds) and "lower bound" not in table(summary)
    assert set(line["scenarios"]["small"]["broker"]) == {
        "mean_turnaround_s",
        "p95_turnaround_s",
        "p99_turnaround_s",
        "failed_attempts",
        "failed_jobs",
        "short_slowdown",
        "large_mean_turnaround_s",
        "bytes_km",
        "carbon_g_per_job",
    }
    # a scenario without grid intensities has no emissions to show: null, "-" in the table
    assert line["scenarios"]["small"]["broker"]["carbon_g_per_job"] is None
    assert "g CO2/job" in table(summary)


def run_all_small(sc):
    return run_seed(sc, [parse_policy("tpv_default"), parse_policy("broker")], 0)
