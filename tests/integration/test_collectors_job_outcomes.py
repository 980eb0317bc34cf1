"""job_outcomes against the real PostgreSQL, on a `job` table in Galaxy's shape in a schema of
its own (dropped afterwards), then through InfluxDB to the broker's view."""

from __future__ import annotations

import io

import pytest

from broker.config import InfluxSettings
from broker.metrics.influx import InfluxSource
from collectors import job_outcomes
from metric_contract.lineprotocol import parse_lines
from tests.integration.conftest import BWA
from tests.support.telegraf import run_module, telegraf_write

pytestmark = pytest.mark.integration
psycopg = pytest.importorskip("psycopg")


def outcomes(output: str) -> dict:
    return {
        (p.tags["destination_id"], p.tags["tool_id"]): p.fields
        for p in parse_lines(output.splitlines())
    }


def test_counts_terminal_states_in_the_window(galaxy_db):
    out = io.StringIO()
    assert job_outcomes.main(["--dsn", galaxy_db, "--window-days", "30"], out=out) == 0
    got = outcomes(out.getvalue())
    assert got == {
        ("pulsar_eu01", BWA): {"ok": 8, "error": 3, "window_days": 30},
        ("pulsar uk,2=b", BWA): {"ok": 3, "error": 0, "window_days": 30},
        ("local", "cat1"): {"ok": 0, "error": 1, "window_days": 30},
    }


def test_window_is_configurable(galaxy_db):
    out = io.StringIO()
    assert job_outcomes.main(["--dsn", galaxy_db, "--window-days", "60"], out=out) == 0
    assert outcomes(out.getvalue())[("pulsar_eu01", BWA)]["ok"] == 28


def test_exec_output_reaches_the_broker_view(galaxy_db, influxdb):
    proc = run_module("collectors.job_outcomes", "--dsn", galaxy_db)
    assert proc.returncode == 0, proc.stderr
    assert telegraf_write(influxdb, proc.stdout) == 3
    view = InfluxSource(InfluxSettings(url=influxdb.url, database=influxdb.database)).fetch()
    o = view.outcomes[("pulsar_eu01", BWA)]
    assert (o.ok, o.error) == (8, 3)
    assert ("pulsar uk,2=b", BWA) in view.outcomes


def test_unreachable_database_one_line_nonzero():
    proc = run_module("collectors.job_outcomes", "--dsn", "host=127.0.0.1 port=9 user=postgres")
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Galaxy database is unreachable" in proc.stderr
