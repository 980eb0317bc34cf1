"""The model-exploration (ME) loop: submit the points, and after every ``--batch`` completions
send the completed and still-queued points to ``POST /reprioritize`` and apply the answer with
EQSQL's ``update_priorities``; at the end, a summary of what EQSQL stored. The part of the
example a real EMEWS workflow would copy; the pools and the queue plumbing are elsewhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

import httpx
import numpy as np
from ackley_pools import start_pools
from ackley_queue import TASK_TYPE, ResultStatus, TaskStatus, open_queue, read_tasks

BOUND = 32.768  # the Ackley box: [-BOUND, BOUND] in every dimension


def explore(args: argparse.Namespace, broker_url: str, script: str) -> dict:
    """Run the exploration against `broker_url`, with pools started from `script`; the summary."""
    rng = np.random.default_rng(args.seed)
    points = rng.uniform(-BOUND, BOUND, size=(args.points, args.dim))
    queue = open_queue(args)
    http = httpx.Client(base_url=broker_url, timeout=30.0)
    pools = start_pools(args, script)
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
