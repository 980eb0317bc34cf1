"""ARBO run store: one append-only table, SQLAlchemy, SQLite by default, PostgreSQL in production.

Every feedback is one INSERT and nothing is read-modified-written, so concurrent feedback for the
same task cannot lose a run on either database: each writer adds its own row, and the fit reads
the newest ``window`` rows. Old rows beyond ``retain_runs`` per task are pruned by id, which only
ever removes runs older than the ones the fit uses.

SQLite: WAL lets the broker read while a writer commits; a busy timeout makes concurrent writers
(threads of the broker, or a second process) wait for the lock instead of failing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import make_url

metadata = MetaData()
runs_table = Table(
    "arbo_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", String(255), nullable=False),
    Column("s", Integer, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("input_size", Float),
    Column("load", Float),
    Column("succeeded", Boolean, nullable=False),
    Column("site", String(255)),
    Column("created_at", Float, nullable=False),
    Index("ix_arbo_runs_task_id", "task", "id"),
)

PRUNE_EVERY = 50


@dataclass(frozen=True)
class RunRecord:
    id: int
    task: str
    s: int
    seconds: float
    input_size: float | None
    load: float | None
    succeeded: bool
    site: str | None
    created_at: float


def default_url(state_dir: Path) -> str:
    return f"sqlite:///{Path(state_dir) / 'arbo.sqlite'}"


class ArboStore:
    """Runs per task; thread-safe (one engine, a connection per operation)."""

    def __init__(self, url: str, retain_runs: int = 1000):
        self.retain_runs = retain_runs
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict = {"pool_pre_ping": True}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    def add_run(
        self,
        task: str,
        s: int,
        seconds: float,
        input_size: float | None = None,
        load: float | None = None,
        succeeded: bool = True,
        site: str | None = None,
    ) -> int:
        values = dict(
            task=task,
            s=s,
            seconds=seconds,
            input_size=input_size,
            load=load,
            succeeded=succeeded,
            site=site,
            created_at=time.time(),
        )
        with self.engine.begin() as conn:
            key = conn.execute(insert(runs_table).values(**values)).inserted_primary_key
        # None only for executemany or a table without a primary key; runs_table has one.
        assert key is not None
        run_id = key[0]
        if run_id % PRUNE_EVERY == 0:
            self.prune(task)
        return int(run_id)

    def prune(self, task: str) -> None:
        newest_kept = (
            select(runs_table.c.id)
            .where(runs_table.c.task == task)
            .order_by(runs_table.c.id.desc())
            .offset(self.retain_runs - 1)
            .limit(1)
            .scalar_subquery()
        )
        with self.engine.begin() as conn:
            conn.execute(
                delete(runs_table).where(runs_table.c.task == task, runs_table.c.id < newest_kept)
            )

    def recent(self, task: str, limit: int, succeeded_only: bool = True) -> list[RunRecord]:
        """The newest ``limit`` runs of a task, oldest first."""
        query = select(runs_table).where(runs_table.c.task == task)
        if succeeded_only:
            query = query.where(runs_table.c.succeeded.is_(True))
        query = query.order_by(runs_table.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [RunRecord(**row._mapping) for row in reversed(rows)]

    def counts(self, task: str) -> tuple[int, int, int | None, float | None]:
        """(runs, succeeded runs, newest succeeded id, newest time) of a task. Only succeeded
        runs are fitted: a failure does not make the model stale."""
        succeeded = runs_table.c.succeeded.is_(True)
        query = select(
            func.count(),
            func.count().filter(succeeded),
            func.max(runs_table.c.id).filter(succeeded),
            func.max(runs_table.c.created_at),
        ).where(runs_table.c.task == task)
        with self.engine.connect() as conn:
            total, ok, newest, at = conn.execute(query).one()
        return int(total), int(ok), newest, at

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
