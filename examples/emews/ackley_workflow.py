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

The parts: ``ackley_queue.py`` (EQSQL in PostgreSQL), ``ackley_pools.py`` (the worker pools,
each a process of this script in its ``pool`` role), ``ackley_explore.py`` (the ME loop);
this script is the command line and the embedded broker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ackley_explore import explore
from ackley_pools import worker_pool
from ackley_queue import reset_database


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
        summary = explore(args, args.broker_url, __file__)
    else:
        with embedded_broker() as url:
            summary = explore(args, url, __file__)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    if args.summary:
        args.summary.write_text(json.dumps(summary))
    brief = {k: v for k, v in summary.items() if k != "reprioritizations"}
    brief["reprioritizations"] = len(summary["reprioritizations"])
    print(json.dumps(brief))
    return summary


if __name__ == "__main__":
    main()
