"""job_outcomes against the real PostgreSQL, on a `job` table in Galaxy's shape in a schema of
its own (dropped afterwards), then through InfluxDB to the broker's view."""

from __future__ import annotations

import io
import uuid

import pytest

from broker.config import InfluxSettings
from broker.metrics.influx import InfluxSource
from broker.metrics.lineprotocol import parse_lines
from collectors import job_outcomes
from tests.support.telegraf import run_module, telegraf_write

pytestmark = pytest.mark.integration
psycopg = pytest.importorskip("psycopg")

BASE_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"

# The columns of Galaxy's `job` table that matter here, with Galaxy's types (update_time is
# UTC "timestamp without time zone", states are free text).
GALAXY_JOB_TABLE = """
CREATE TABLE job (
    id serial PRIMARY KEY,
    create_time timestamp without time zone,
    update_time timestamp without time zone,
    history_id integer,
    tool_id character varying(255),
    tool_version text,
    state character varying(64),
    info text,
    command_line text,
    job_runner_name character varying(255),
    job_runner_external_id character varying(255),
    destination_id character varying(255),
    destination_params bytea,
    handler character varying(255),
    user_id integer
)
"""

BWA = "toolshed.g2.bx.psu.edu/repos/devteam/bwa/bwa_mem/0.7.17.2"


@pytest.fixture
def galaxy_db():
    try:
        admin = psycopg.connect(BASE_DSN, autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    schema = f"tpv_collectors_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    admin.execute(f'SET search_path TO "{schema}"')
    admin.execute(GALAXY_JOB_TABLE)
    rows = []

    def add(tool, dest, state, days_ago, n=1):
        for _ in range(n):
            rows.append((tool, dest, state, days_ago))

    add(BWA, "pulsar_eu01", "ok", 1, n=8)
    add(BWA, "pulsar_eu01", "error", 2, n=2)
    add(BWA, "pulsar_eu01", "failed", 3)
    add(BWA, "pulsar_eu01", "ok", 45, n=20)  # outside the 30-day window
    add(BWA, "pulsar_eu01", "deleted", 1, n=5)  # the user's choice, not the site's fault
    add(BWA, "pulsar_eu01", "running", 0, n=4)  # not finished
    add(BWA, "pulsar uk,2=b", "ok", 0, n=3)  # tag escaping
    add("upload1", None, "error", 1)  # never dispatched
    add("cat1", "local", "error", 5)
    with admin.cursor() as cur:
        cur.executemany(
            "INSERT INTO job (tool_id, destination_id, state, create_time, update_time) "
            "VALUES (%s, %s, %s, (now() AT TIME ZONE 'UTC') - make_interval(days => %s) "
            "- interval '1 hour', (now() AT TIME ZONE 'UTC') - make_interval(days => %s))",
            [(t, d, s, a, a) for t, d, s, a in rows],
        )
    try:
        yield f"{BASE_DSN} options='-csearch_path={schema}'"
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


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
