"""EMEWS-style model exploration on EQSQL task queues, reprioritized by the broker.

The ParSocial 2023 reference workflow, run for real: points of the 4-D Ackley function go into
EQSQL task queues in PostgreSQL; worker-pool processes pop the highest-priority task, evaluate
Ackley after a lognormal sleep (a stand-in for a simulation) and report the result; after every
``--batch`` completions the model-exploration (ME) loop sends the completed points and the
still-queued points to ``POST /reprioritize`` and applies the answer with EQSQL's
``update_priorities``.

Full size (750 points, 50 per batch, 3 pools; about 5 minutes with the default sleeps):

    python examples/emews/ackley_workflow.py --broker-url http://127.0.0.1:8080

Without ``--broker-url`` an embedded broker (the real router on a local port) is started.
PostgreSQL: ``--db-host/--db-port/--db-user/--db-name``; the database is created when missing
and its EQSQL tables are dropped and recreated from eqsql's own ``workflow.sql`` at the start,
so runs repeat. The last line printed is a JSON summary. ``tests/integration`` runs this at a
small size.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

# eqsql evaluates os.environ["USER"] as a default argument when it is imported; service
# accounts and containers often have no USER, so provide the login name.
os.environ.setdefault("USER", getpass.getuser())

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from eqsql.task_queues import local_queue  # noqa: E402
from eqsql.task_queues.core import EQ_STOP, ResultStatus, TaskStatus  # noqa: E402

TASK_TYPE = 0
BOUND = 32.768
EQSQL_OBJECTS = (
    "DROP TABLE IF EXISTS eq_exp_id_tasks, eq_tasks, eq_task_tags, emews_queue_out, "
    "emews_queue_in CASCADE",
    "DROP SEQUENCE IF EXISTS emews_id_generator",
)


def ackley(x: np.ndarray) -> float:
    """The d-dimensional Ackley function (a=20, b=0.2, c=2 pi)."""
    x = np.asarray(x, dtype=float)
    d = len(x)
    return float(
        -20.0 * np.exp(-0.2 * np.sqrt(np.sum(x**2) / d))
        - np.exp(np.sum(np.cos(2 * np.pi * x)) / d)
        + 20.0
        + np.e
    )


# -- database -------------------------------------------------------------------------------
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


# -- worker pools ---------------------------------------------------------------------------
def worker_pool(args: argparse.Namespace) -> None:
    """One pool: ``--workers`` threads, each with its own queue connection, popping one task
    at a time (so a reprioritization takes effect at the very next pop)."""

    def work(index: int) -> None:
        rng = np.random.default_rng([args.seed, zlib.crc32(args.pool_name.encode()), index])
        queue = open_queue(args)
        try:
            while True:
                msg = queue.query_task(TASK_TYPE, worker_pool=args.pool_name, timeout=2.0)
                if msg["type"] == "status":
                    if msg["payload"] == EQ_STOP:
                        return
                    continue  # EQ_TIMEOUT: nothing queued yet
                x = json.loads(msg["payload"])["x"]
                time.sleep(rng.lognormal(args.mean_rt, args.std_rt) * args.sleep_scale)
                status = queue.report_task(msg["eq_task_id"], TASK_TYPE, json.dumps(ackley(x)))
                if status != ResultStatus.SUCCESS:
                    raise RuntimeError(f"could not report task {msg['eq_task_id']}")
        finally:
            queue.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def start_pools(args: argparse.Namespace) -> list[subprocess.Popen]:
    common = [
        f"--db-host={args.db_host}",
        f"--db-port={args.db_port}",
        f"--db-user={args.db_user}",
        f"--db-name={args.db_name}",
        f"--workers={args.workers}",
        f"--mean-rt={args.mean_rt}",
        f"--std-rt={args.std_rt}",
        f"--sleep-scale={args.sleep_scale}",
        f"--seed={args.seed}",
    ]
    return [
        subprocess.Popen([sys.executable, __file__, "pool", f"--pool-name=pool{i}", *common])
        for i in range(args.pools)
    ]


# -- broker ---------------------------------------------------------------------------------
@contextlib.contextmanager
def embedded_broker() -> Iterator[str]:
    """The real reprioritization router served over HTTP on a free local port."""
    import uvicorn
    from fastapi import FastAPI

    from broker.errors import install_error_handlers
    from broker.reprioritize.routes import router

    app = FastAPI()

    install_error_handlers(app)
    app.include_router(router)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("embedded broker did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# -- model exploration ----------------------------------------------------------------------
def explore(args: argparse.Namespace, broker_url: str) -> dict:
    rng = np.random.default_rng(args.seed)
    points = rng.uniform(-BOUND, BOUND, size=(args.points, args.dim))
    queue = open_queue(args)
    http = httpx.Client(base_url=broker_url, timeout=30.0)
    pools = start_pools(args)
    reprioritizations = []
    try:
        payloads = [json.dumps({"x": p.tolist()}) for p in points]
        status, futures = queue.submit_tasks(args.exp_id, TASK_TYPE, payloads)
        if status != ResultStatus.SUCCESS:
            raise RuntimeError("submitting the tasks failed")
        x_of = {ft.eq_task_id: p.tolist() for ft, p in zip(futures, points, strict=True)}
        waiting = list(futures)
        results: dict[int, float] = {}
        while waiting:
            n = min(args.batch, len(waiting))
            for ft in queue.as_completed(waiting, pop=True, n=n, sleep=0.05):
                _, result = ft.result()
                results[ft.eq_task_id] = json.loads(result)
            if not waiting:
                break
            queued = [ft for ft, s in queue.get_status(waiting) if s == TaskStatus.QUEUED]
            if not queued:
                continue
            body = {
                "completed": [{"id": i, "x": x_of[i], "y": y} for i, y in results.items()],
                "pending": [{"id": ft.eq_task_id, "x": x_of[ft.eq_task_id]} for ft in queued],
                "goal": "minimize",
            }
            started = time.perf_counter()
            response = http.post("/reprioritize", json=body)
            response.raise_for_status()
            answer = response.json()
            seconds = time.perf_counter() - started
            by_id = {ft.eq_task_id: ft for ft in queued}
            ordered = [by_id[i] for i in answer["order"]]
            status, affected = queue.update_priorities(
                ordered, [answer["priorities"][str(i)] for i in answer["order"]]
            )
            if status != ResultStatus.SUCCESS:
                raise RuntimeError("update_priorities failed")
            reprioritizations.append(
                {
                    "completed": len(results),
                    "sent": len(queued),
                    "affected": sorted(affected),
                    "priorities": answer["priorities"],
                    "seconds": round(seconds, 4),
                }
            )
            print(
                f"reprioritized {len(queued)} queued tasks after {len(results)} completions "
                f"({len(affected)} updated, {seconds:.2f} s)",
                flush=True,
            )
    finally:
        for _ in range(args.pools * args.workers):
            queue.stop_worker_pool(TASK_TYPE)
        for pool in pools:
            try:
                pool.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pool.kill()
        queue.close()
        http.close()

    tasks = read_tasks(args)
    ys = np.array([t["y"] for t in tasks], dtype=float)
    best = int(np.argmin(ys))
    return {
        "points": args.points,
        "completed": int(np.sum(np.isfinite(ys))),
        "best_y": float(ys[best]),
        "best_position": best + 1,
        "best_so_far": {str(k): float(ys[:k].min()) for k in (50, 100, 200) if k <= len(ys)},
        "pools": sorted({t["pool"] for t in tasks}),
        "reprioritizations": reprioritizations,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", choices=["me", "pool"], default="me")
    parser.add_argument("--points", type=int, default=750)
    parser.add_argument("--dim", type=int, default=4)
    parser.add_argument("--batch", type=int, default=50, help="reprioritize after this many")
    parser.add_argument("--pools", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="concurrent tasks per pool")
    parser.add_argument("--mean-rt", type=float, default=1.0, help="ln of the median sleep (s)")
    parser.add_argument("--std-rt", type=float, default=0.5, help="sd of the ln sleep")
    parser.add_argument("--sleep-scale", type=float, default=1.0, help="multiplies every sleep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exp-id", default="ackley")
    parser.add_argument("--pool-name", default="pool0")
    parser.add_argument("--broker-url", default=None, help="default: an embedded broker")
    parser.add_argument("--db-host", default="127.0.0.1")
    parser.add_argument("--db-port", type=int, default=5432)
    parser.add_argument("--db-user", default="postgres")
    parser.add_argument("--db-name", default="eqsql_example")
    parser.add_argument("--summary", type=Path, default=None, help="also write the JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.role == "pool":
        worker_pool(args)
        return None
    reset_database(args)
    started = time.perf_counter()
    if args.broker_url:
        summary = explore(args, args.broker_url)
    else:
        with embedded_broker() as url:
            summary = explore(args, url)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    if args.summary:
        args.summary.write_text(json.dumps(summary))
    brief = {k: v for k, v in summary.items() if k != "reprioritizations"}
    brief["reprioritizations"] = len(summary["reprioritizations"])
    print(json.dumps(brief))
    return summary


if __name__ == "__main__":
    main()
