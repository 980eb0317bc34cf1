"""The example's worker pools: processes of threads that pop the highest-priority task, sleep a
lognormal time (the stand-in for a simulation), evaluate Ackley and report the result. Apart
from the model-exploration loop (``ackley_explore``) because a pool is its own process: the
entry script re-runs itself with ``pool`` for each one (``start_pools``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
from ackley_queue import EQ_STOP, TASK_TYPE, ResultStatus, open_queue


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


def start_pools(args: argparse.Namespace, script: str) -> list[subprocess.Popen]:
    """``--pools`` processes of `script` (the entry) in its ``pool`` role, same settings."""
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
        subprocess.Popen([sys.executable, script, "pool", f"--pool-name=pool{i}", *common])
        for i in range(args.pools)
    ]
