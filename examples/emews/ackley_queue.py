"""The example's EQSQL task queues in PostgreSQL: the database reset, the queue handle and the
read-back of what EQSQL stored. The one module of the example that imports eqsql, because eqsql
evaluates ``os.environ["USER"]`` as a default argument when it is imported, and service
accounts and containers often have no USER: it is provided here, before that import, and the
other modules take eqsql's names from here.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from importlib import resources

os.environ.setdefault("USER", getpass.getuser())

import psycopg  # noqa: E402
from eqsql.task_queues import local_queue  # noqa: E402
from eqsql.task_queues.core import EQ_STOP, ResultStatus, TaskStatus  # noqa: E402

__all__ = [
    "EQ_STOP",
    "TASK_TYPE",
    "ResultStatus",
    "TaskStatus",
    "open_queue",
    "read_tasks",
    "reset_database",
]

TASK_TYPE = 0
EQSQL_OBJECTS = (
    "DROP TABLE IF EXISTS eq_exp_id_tasks, eq_tasks, eq_task_tags, emews_queue_out, "
    "emews_queue_in CASCADE",
    "DROP SEQUENCE IF EXISTS emews_id_generator",
)


def _conninfo(args: argparse.Namespace, dbname: str) -> str:
    return f"host={args.db_host} port={args.db_port} user={args.db_user} dbname={dbname}"


def reset_database(args: argparse.Namespace) -> None:
    """Create the database if missing and (re)create EQSQL's tables from its workflow.sql."""
    with psycopg.connect(_conninfo(args, "postgres"), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (args.db_name,))
        if found.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{args.db_name}"')
    schema = resources.files("eqsql").joinpath("workflow.sql").read_text()
    with psycopg.connect(_conninfo(args, args.db_name), autocommit=True) as conn:
        for statement in EQSQL_OBJECTS:
            conn.execute(statement)
        conn.execute(schema)


def read_tasks(args: argparse.Namespace) -> list[dict]:
    """Every evaluated task as stored by EQSQL, in the order the workers started them."""
    with psycopg.connect(_conninfo(args, args.db_name)) as conn:
        rows = conn.execute(
            "SELECT eq_task_id, json_out, json_in, eq_status, eq_priority, worker_pool, time_start"
            " FROM eq_tasks WHERE json_out <> %s ORDER BY time_start, eq_task_id",
            (EQ_STOP,),
        ).fetchall()
    return [
        {
            "id": r[0],
            "x": json.loads(r[1])["x"],
            "y": None if r[2] is None else json.loads(r[2]),
            "status": r[3],
            "priority": r[4],
            "pool": r[5],
        }
        for r in rows
    ]


def open_queue(args: argparse.Namespace) -> local_queue.LocalTaskQueue:
    return local_queue.init_task_queue(
        args.db_host, args.db_user, args.db_port, args.db_name, retry_threshold=5
    )
