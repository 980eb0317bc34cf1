"""End to end on real services: Galaxy's tables (Galaxy's own model) in PostgreSQL holding jobs
with known queue waits and run times (one resubmitted to a second destination), their routing
decisions in InfluxDB, the attempt-outcomes collector run and written as Telegraf does, then
`tpv-broker report`, whose figures are checked against ones computed here by hand.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from statistics import fmean, median

import pytest

import metric_contract.measurements as mc
from broker.config import InfluxSettings
from broker.metrics.influx import InfluxSource
from metric_contract.lineprotocol import format_point, parse_text
from tests.support.paths import ROOT
from tests.support.report_traffic import BWA, CAT, EU, UK, finished, populate
from tests.support.telegraf import run_module, telegraf_write


@pytest.fixture
def traffic(galaxy_schema_dsn, influxdb):
    ids = populate(galaxy_schema_dsn, influxdb)
    args = (
        "--dsn",
        galaxy_schema_dsn,
        "--influx-url",
        influxdb.url,
        "--influx-database",
        influxdb.database,
    )
    return ids, args


def test_collector_writes_each_finished_attempt_once_with_galaxy_times(traffic, influxdb):
    ids, args = traffic
    first = run_module("collectors.attempt_outcomes", *args)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    points = {(p.fields[mc.JOB_ID], p.fields[mc.ATTEMPT]): p for p in parse_text(first.stdout)}
    expected = {}
    for name, number, a in finished():
        state = "error" if a.end == "resubmitted" else a.end
        expected[(ids[name], number)] = (a.dest, state, a.queue_s, a.run_s, state == "ok")
    got = {
        key: (
            p.tags[mc.DESTINATION_ID],
            p.tags[mc.STATE],
            p.fields[mc.QUEUE_S],
            p.fields[mc.RUN_S],
            p.fields[mc.OK],
        )
        for key, p in points.items()
    }
    assert got == expected
    assert all(p.measurement == mc.ATTEMPT_OUTCOMES and p.time_ns for p in points.values())
    # the resubmitted job's first attempt ran at EU, which Galaxy no longer records anywhere
    assert points[(ids["j4"], 1)].tags[mc.DESTINATION_ID] == EU
    assert points[(ids["j4"], 1)].time_ns < points[(ids["j4"], 2)].time_ns
    # idempotent: a second run prints the same points, and InfluxDB keeps one per attempt
    second = run_module("collectors.attempt_outcomes", *args)
    assert second.stdout == first.stdout
    telegraf_write(influxdb, first.stdout)
    telegraf_write(influxdb, second.stdout)
    rows = influxdb.query(f'SELECT count("{mc.JOB_ID}") FROM "{mc.ATTEMPT_OUTCOMES}"')
    assert rows["results"][0]["series"][0]["values"][0][1] == len(expected)


def test_broker_counts_attempt_outcomes_per_destination_and_tool(traffic, influxdb):
    """The success model's input: every attempt at the destination it ran at (j4's failed
    first attempt counts against EU), replacing job_outcomes' last-destination counts."""
    _, args = traffic
    out = run_module("collectors.attempt_outcomes", *args).stdout
    telegraf_write(influxdb, out)
    # job_outcomes would credit EU with j4 as nothing (its last destination is UK)
    influxdb.write(
        [
            format_point(
                mc.OUTCOMES, {mc.DESTINATION_ID: EU, mc.TOOL_ID: BWA}, {"ok": 2, "error": 0}
            ),
            format_point(
                mc.OUTCOMES, {mc.DESTINATION_ID: UK, mc.TOOL_ID: "other"}, {"ok": 7, "error": 1}
            ),
        ]
    )
    view = InfluxSource(InfluxSettings(url=influxdb.url, database=influxdb.database)).fetch()
    counts = {k: (o.ok, o.error) for k, o in view.outcomes.items()}
    assert counts == {
        (EU, BWA): (2.0, 1.0),  # j1, j2 ok; j4 attempt 1 resubmitted
        (UK, BWA): (1.0, 0.0),  # j4 attempt 2
        (UK, CAT): (0.0, 1.0),  # j3 error; j6 deleted is not counted
        (UK, "other"): (7.0, 1.0),  # no attempt outcomes: job_outcomes as before
    }
    assert all(o.time_s > 0 for o in view.outcomes.values())


def _errors(pred, act):
    within = [0.5 <= max(p, 1.0) / max(a, 1.0) <= 2.0 for p, a in zip(pred, act, strict=True)]
    return {
        "n": len(pred),
        "median_abs_error_s": round(median(abs(p - a) for p, a in zip(pred, act, strict=True)), 3),
        "bias_s": round(median(p - a for p, a in zip(pred, act, strict=True)), 3),
        "within_2x": round(sum(within) / len(within), 4),
    }


def test_report_figures_match_the_ones_computed_by_hand(traffic, influxdb, tmp_path):
    _, args = traffic
    telegraf_write(influxdb, run_module("collectors.attempt_outcomes", *args).stdout)
    config = tmp_path / "broker.yml"
    config.write_text(
        f"metrics:\n  source: influxdb\n  influxdb:\n    url: {influxdb.url}\n"
        f"    database: {influxdb.database}\n"
    )
    plots = tmp_path / "plots"
    proc = subprocess.run(
        [sys.executable, "-m", "broker.cli", "report", "--since", "1d", "--config", str(config)]
        + ["--plot", str(plots)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    done = finished()
    assert report["decisions"] == 7  # six jobs, j4 twice
    assert report["attempts_joined"] == len(done) == 6
    assert report["outcomes_without_decision"] == 0

    def figures(group):
        wait = _errors([a.wait for _, _, a in group], [a.queue_s for _, _, a in group])
        run = _errors([a.run for _, _, a in group], [a.run_s for _, _, a in group])
        total = _errors(
            [a.transfer + a.wait + a.run for _, _, a in group],
            [a.queue_s + a.run_s for _, _, a in group],
        )
        return {"wait": wait, "run": run, "total": total}

    assert report["all"]["errors"] == figures(done)
    for dest in (EU, UK):
        group = [x for x in done if x[2].dest == dest]
        assert report["destinations"][dest]["errors"] == figures(group)
    # hand check of one figure: the run error at EU is over j1 (500 vs 600), j2 (1000 vs 1100
    # from runtime_seconds) and j4's first attempt (800 vs 100)
    assert report["destinations"][EU]["errors"]["run"]["median_abs_error_s"] == 100.0
    assert report["destinations"][EU]["errors"]["run"]["bias_s"] == -100.0

    # calibration: j6 (deleted) is left out; all five in distinct bins of width 0.1
    counted = [(a.p, 1.0 if a.end == "ok" else 0.0) for _, _, a in done if a.end != "deleted"]
    cal = report["all"]["calibration"]
    assert cal["n"] == 5
    assert cal["brier"] == round(fmean((p - y) ** 2 for p, y in counted), 4)
    bins = {
        tuple(b["bin"]): (b["count"], b["mean_predicted"], b["observed_rate"]) for b in cal["bins"]
    }
    assert bins == {
        (0.6, 0.7): (1, 0.6, 1.0),  # j4 attempt 2
        (0.7, 0.8): (1, 0.7, 0.0),  # j3
        (0.8, 0.9): (1, 0.85, 0.0),  # j4 attempt 1
        (0.9, 1.0): (2, 0.9, 1.0),  # j1, j2
    }

    # first choice differed: only j3 (shadow) of seven decisions
    assert report["all"]["first_choice_differed"] == {
        "decisions": 7,
        "differed": 1,
        "share": round(1 / 7, 4),
    }
    assert report["by_mode"]["shadow"] == {"decisions": 1, "differed": 1, "share": 1.0}
    assert report["by_mode"]["enforce"]["differed"] == 0

    used = [a for _, _, a in done if a.first_choice == a.dest]
    t = report["all"]["turnaround"]["broker_choice_used"]
    assert t["n"] == len(used) == 5
    assert t["median_predicted_s"] == round(median(a.transfer + a.wait + a.run for a in used), 3)
    assert t["median_actual_s"] == round(median(a.queue_s + a.run_s for a in used), 3)
    assert math.isclose(t["mean_actual_s"], fmean(a.queue_s + a.run_s for a in used), abs_tol=1e-3)
    assert report["all"]["turnaround"]["other_choice_used"]["n"] == 1

    # the text before the JSON names the sections, and the plots are PNGs a person can open
    assert "Calibration of P(success)" in proc.stdout and "first choice differed" in proc.stdout
    import matplotlib.image

    for name in ("predicted-vs-actual.png", "calibration.png"):
        image = matplotlib.image.imread(plots / name)
        assert image.shape[0] > 300 and image.shape[1] > 300
        assert image.std() > 0.01  # not a blank canvas


def test_unreachable_influxdb_is_one_line_and_a_nonzero_exit(tmp_path, galaxy_schema_dsn):
    from broker.demo import free_port

    url = f"http://127.0.0.1:{free_port()}"
    collector = run_module(
        "collectors.attempt_outcomes", "--dsn", galaxy_schema_dsn, "--influx-url", url
    )
    assert collector.returncode == 3 and collector.stdout == ""
    assert collector.stderr.startswith(f"attempt_outcomes: error: InfluxDB at {url} is unreachable")
    assert collector.stderr.count("\n") == 1
    config = tmp_path / "broker.yml"
    config.write_text(f"metrics:\n  source: influxdb\n  influxdb:\n    url: {url}\n")
    report = subprocess.run(
        [sys.executable, "-m", "broker.cli", "report", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert report.returncode == 3 and report.stdout == ""
    assert "Traceback" not in report.stderr and report.stderr.count("\n") == 1
    assert f"InfluxDB at {url} is unreachable" in report.stderr


def test_an_answer_past_the_size_bound_is_refused_by_name(traffic, influxdb):
    from broker.metrics.view import SourceError

    source = InfluxSource(InfluxSettings(url=influxdb.url, database=influxdb.database))
    assert (
        len(source.query(f'SELECT * FROM "{mc.DECISIONS}"', max_bytes=1 << 20)) == 7
    )  # one per decision
    with pytest.raises(SourceError, match="answered more than 500 bytes"):
        source.query(f'SELECT * FROM "{mc.DECISIONS}"', max_bytes=500)


def test_unreachable_galaxy_database_is_one_line_and_exit_3(traffic, influxdb):
    from broker.demo import free_port

    dsn = f"host=127.0.0.1 port={free_port()} dbname=galaxy connect_timeout=2"
    proc = run_module("collectors.attempt_outcomes", "--dsn", dsn, "--influx-url", influxdb.url)
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.startswith("attempt_outcomes: error: Galaxy database is unreachable")
    assert proc.stderr.count("\n") == 1
