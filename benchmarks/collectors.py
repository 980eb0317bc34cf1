"""`python -m benchmarks.collectors`: how fast the AMQP consumer drains a backlog.

A backlog is what the Galaxy server sees after Telegraf or the consumer was down for a while
(10,000 messages = a week of one site, or an hour of 160 sites). The consumer has to drain it
inside one Telegraf exec run, or the metrics lag further behind every minute.

Method: declare a throw-away queue (unique name) through the consumer itself, publish 10,000
valid schema-1 messages to the real RabbitMQ on 127.0.0.1:5672, wait until the queue holds
them all, then time one exec run exactly as Telegraf starts it (`python -m
collectors.amqp_consumer ...` as a subprocess, stdout read to the end), interpreter start-up
included. The run must print 10,000 valid lines and leave the queue empty; the queue and
exchanges are deleted afterwards. Target: 10,000 messages in under 5 s.
JSON on the last line: {"messages", "seconds", "messages_per_s"} (+ details).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika

from collectors.amqp import dead_letter_names
from collectors.schema import ClusterState
from metric_contract.lineprotocol import parse_lines

ROOT = Path(__file__).resolve().parents[1]
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "10000"))
TARGET_S = 5.0


def message(i: int, now: float) -> bytes:
    totals = {
        "cpus": 512,
        "cpus_free": i % 512,
        "memory_mb": 2_048_000,
        "memory_mb_free": (i % 512) * 4000,
        "gpus": 8,
        "gpus_free": i % 8,
        "jobs_idle": i % 97,
        "jobs_running": 512 - i % 512,
        "jobs_held": i % 3,
    }
    slot = {"cpus": min(32, i % 512), "memory_mb": min(128000, (i % 512) * 4000), "gpus": i % 8}
    return ClusterState(f"site{i % 160:03d}", now - 3600 + i * 0.1, totals, slot).to_json()


def run_consumer(exchange: str, queue: str, extra: list[str]) -> subprocess.CompletedProcess:
    args = ["--amqp-url", AMQP_URL, "--exchange", exchange, "--queue", queue, *extra]
    return subprocess.run(
        [sys.executable, "-m", "collectors.amqp_consumer", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def main() -> int:
    tag = uuid.uuid4().hex[:10]
    exchange, queue = f"bench.metrics.{tag}", f"bench.htcondor.{tag}"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    try:
        setup = run_consumer(exchange, queue, [])  # declares the topology, prints nothing
        if setup.returncode != 0:
            print(setup.stderr, file=sys.stderr)
            return 1
        now = time.time()
        for i in range(MESSAGES):
            channel.basic_publish(
                exchange,
                f"htcondor.site{i % 160:03d}",
                message(i, now),
                pika.BasicProperties(delivery_mode=2, content_type="application/json"),
            )
        deadline = time.monotonic() + 60
        while channel.queue_declare(queue, passive=True).method.message_count < MESSAGES:
            if time.monotonic() > deadline:
                raise SystemExit("RabbitMQ did not queue every benchmark message within 60 s")
            time.sleep(0.05)

        started = time.perf_counter()
        proc = run_consumer(
            exchange, queue, ["--max-messages", str(MESSAGES), "--max-seconds", "60"]
        )
        seconds = time.perf_counter() - started

        lines = proc.stdout.splitlines()
        points = list(parse_lines(lines))
        left = channel.queue_declare(queue, passive=True).method.message_count
        ok = proc.returncode == 0 and len(points) == MESSAGES and left == 0
        result = {
            "messages": len(points),
            "seconds": round(seconds, 3),
            "messages_per_s": round(len(points) / seconds, 1),
            "target_s": TARGET_S,
            "meets_target": ok and seconds < TARGET_S,
            "left_in_queue": left,
            "exit_code": proc.returncode,
        }
        print(
            f"drained {len(points)} of {MESSAGES} messages in {seconds:.2f} s "
            f"({result['messages_per_s']:.0f}/s, one exec run incl. interpreter start-up)"
        )
        if proc.stderr:
            print(proc.stderr.strip(), file=sys.stderr)
        print(json.dumps(result))
        return 0 if ok else 1
    finally:
        dlx, dlq = dead_letter_names(queue)
        channel.queue_delete(queue)
        channel.queue_delete(dlq)
        channel.exchange_delete(dlx)
        channel.exchange_delete(exchange)
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
