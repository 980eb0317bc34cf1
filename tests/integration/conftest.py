"""Fixtures of the integration tests (real services; the InfluxDB ones are in tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest

from tests.support.galaxy_schema import BASE_DSN, galaxy_schema
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


BWA = "toolshed.g2.bx.psu.edu/repos/devteam/bwa/bwa_mem/0.7.17.2"


@pytest.fixture
def galaxy_schema_dsn():
    """An empty Galaxy database (Galaxy's own model's tables) in a PostgreSQL schema of its
    own; yields its DSN, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(BASE_DSN).close()
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    with galaxy_schema("tpv_collectors") as dsn:
        yield dsn


@pytest.fixture
def galaxy_db(galaxy_schema_dsn):
    """Galaxy's tables with known job outcomes."""
    import psycopg

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
    with psycopg.connect(galaxy_schema_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO job (tool_id, destination_id, state, create_time, update_time) "
            "VALUES (%s, %s, %s, (now() AT TIME ZONE 'UTC') - make_interval(days => %s) "
            "- interval '1 hour', (now() AT TIME ZONE 'UTC') - make_interval(days => %s))",
            [(t, d, s, a, a) for t, d, s, a in rows],
        )
    return galaxy_schema_dsn
