"""Galaxy's database schema from Galaxy's own SQLAlchemy model (package `galaxy-data`, in the
TPV venv), in a PostgreSQL schema of a test's own.

The TPV venv has Galaxy's model but no PostgreSQL driver, and the test venv has the driver but
not Galaxy: so the TPV venv's python runs the model's `metadata.create_all` against a mock
engine of the PostgreSQL dialect, which emits exactly the DDL `create_all` would send, and the
tests run that DDL with psycopg. Importing Galaxy costs tens of seconds, so the DDL is kept
next to the venv, one file per galaxy-data version.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from tests.support.real_tpv import TPV_PYTHON, TPV_VENV, ensure_tpv_venv

BASE_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"

_EMIT_DDL = """
import sys
from sqlalchemy import create_mock_engine
from galaxy.model import mapper_registry

statements = []
engine = create_mock_engine(
    "postgresql+psycopg://",
    lambda sql, *a, **k: statements.append(str(sql.compile(dialect=engine.dialect)).strip()),
)
mapper_registry.metadata.create_all(engine, checkfirst=False)
sys.stdout.write(";\\n\\n".join(statements) + ";\\n")
"""


def _galaxy_data_version() -> str:
    out = subprocess.run(
        [str(TPV_PYTHON), "-c", "import importlib.metadata as m; print(m.version('galaxy-data'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def galaxy_ddl() -> str:
    """`CREATE TABLE`/`CREATE INDEX` statements of Galaxy's whole model, for PostgreSQL."""
    ensure_tpv_venv()
    cache = TPV_VENV / f"galaxy-data-{_galaxy_data_version()}-postgresql.sql"
    if not cache.exists():
        ddl = subprocess.run(
            [str(TPV_PYTHON), "-c", _EMIT_DDL], capture_output=True, text=True, check=True
        ).stdout
        if "CREATE TABLE job_state_history" not in ddl:
            raise RuntimeError("Galaxy's model produced no job_state_history table")
        tmp = cache.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_text(ddl)
        tmp.replace(cache)  # atomic: parallel sessions never read half a file
    return cache.read_text()


@contextmanager
def galaxy_schema(prefix: str = "tpv_galaxy") -> Iterator[str]:
    """A fresh PostgreSQL schema holding Galaxy's tables; yields a DSN whose search_path is it.
    Dropped afterwards."""
    import psycopg

    ddl = galaxy_ddl()
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(BASE_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            admin.execute(f'SET search_path TO "{schema}"')
            with admin.transaction():
                admin.execute(ddl)
            yield f"{BASE_DSN} options='-csearch_path={schema}'"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def utc_naive(at: datetime) -> datetime:
    """Galaxy stores UTC as `timestamp without time zone`."""
    return at.astimezone(UTC).replace(tzinfo=None)


def ago(seconds: float) -> datetime:
    return utc_naive(datetime.now(UTC) - timedelta(seconds=seconds))


def add_job(
    conn,
    tool_id: str,
    destination_id: str | None,
    history: list[tuple[str, datetime]],
    runtime_s: float | None = None,
    create_time: datetime | None = None,
) -> int:
    """One job as Galaxy records it: the `job` row (state and update_time of its last history
    row), its `job_state_history` rows, and the core plugin's `runtime_seconds` metric."""
    created = create_time or (history[0][1] if history else ago(0))
    state, updated = history[-1] if history else ("new", created)
    job_id = conn.execute(
        "INSERT INTO job (tool_id, tool_version, destination_id, state, create_time, update_time)"
        " VALUES (%s, '1.0', %s, %s, %s, %s) RETURNING id",
        (tool_id, destination_id, state, created, updated),
    ).fetchone()[0]
    for row_state, at in history:
        conn.execute(
            "INSERT INTO job_state_history (job_id, state, create_time) VALUES (%s, %s, %s)",
            (job_id, row_state, at),
        )
    if runtime_s is not None:
        conn.execute(
            "INSERT INTO job_metric_numeric (job_id, plugin, metric_name, metric_value)"
            " VALUES (%s, 'core', 'runtime_seconds', %s)",
            (job_id, runtime_s),
        )
    return job_id
