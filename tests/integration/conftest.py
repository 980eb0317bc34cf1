"""Fixtures of the integration tests (real services; the InfluxDB ones are in tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest

from tests.support.rabbitmq import Topology, rabbitmq_available


@pytest.fixture
def topology():
    """Unique names per test, so parallel runs and leftovers never meet; deleted afterwards."""
    if not rabbitmq_available():
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672 (rabbitmq-server -detached)")
    tag = uuid.uuid4().hex[:12]
    topo = Topology(exchange=f"test.metrics.{tag}", queue=f"test.htcondor.{tag}")
    yield topo
    topo.delete()


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
    """Galaxy's `job` table with known outcomes, in a PostgreSQL schema of its own."""
    psycopg = pytest.importorskip("psycopg")
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
