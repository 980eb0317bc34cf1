"""Helpers for the collector integration tests (no tests here): a per-test RabbitMQ topology
with unique names that is deleted afterwards, running a collector the way Telegraf's exec
plugin does, and writing its output to InfluxDB the way Telegraf's influx output does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from collectors.amqp import dead_letter_names
from collectors.settings import CollectorSettings
from metric_contract.lineprotocol import format_point, parse_lines

ROOT = Path(__file__).resolve().parents[2]
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def rabbitmq_available() -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(AMQP_URL + "?connection_attempts=1")).close()
        return True
    except Exception:
        return False


@dataclass
class Topology:
    exchange: str
    queue: str

    @property
    def dead_queue(self) -> str:
        return dead_letter_names(self.queue)[1]

    def settings(self, **kw) -> CollectorSettings:
        base = dict(amqp_url=AMQP_URL, exchange=self.exchange, queue=self.queue, max_seconds=10.0)
        return CollectorSettings(**(base | kw))

    def consumer_args(self, *extra: str) -> list[str]:
        return ["--amqp-url", AMQP_URL, "--exchange", self.exchange, "--queue", self.queue, *extra]

    def channel(self):
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        return connection, connection.channel()

    def publish_raw(self, bodies: list[bytes], routing_key: str = "htcondor.test") -> None:
        """Publish persistent messages and wait until the queue holds them. Without publisher
        confirms (one round trip each would make thousands slow); the wait replaces them."""
        connection, ch = self.channel()
        try:
            before = ch.queue_declare(self.queue, passive=True).method.message_count
            for body in bodies:
                ch.basic_publish(
                    self.exchange, routing_key, body, pika.BasicProperties(delivery_mode=2)
                )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ready = ch.queue_declare(self.queue, passive=True).method.message_count
                if ready >= before + len(bodies):
                    return
                time.sleep(0.02)
            raise AssertionError(f"RabbitMQ holds {ready - before} of {len(bodies)} messages")
        finally:
            connection.close()

    def counts(self) -> tuple[int, int]:
        """(ready in the work queue, ready in the dead-letter queue)."""
        connection, ch = self.channel()
        try:
            work = ch.queue_declare(self.queue, passive=True).method.message_count
            dead = ch.queue_declare(self.dead_queue, passive=True).method.message_count
            return work, dead
        finally:
            connection.close()

    def get_dead(self) -> list[tuple[pika.BasicProperties, bytes]]:
        connection, ch = self.channel()
        out = []
        try:
            while True:
                method, props, body = ch.basic_get(self.dead_queue, auto_ack=True)
                if method is None:
                    return out
                out.append((props, body))
        finally:
            connection.close()

    def delete(self) -> None:
        connection, ch = self.channel()
        try:
            dlx, dlq = dead_letter_names(self.queue)
            ch.queue_delete(self.queue)
            ch.queue_delete(dlq)
            ch.exchange_delete(dlx)
            ch.exchange_delete(self.exchange)
        finally:
            connection.close()


@pytest.fixture(name="topology")
def topology_fixture():
    if not rabbitmq_available():
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672 (rabbitmq-server -detached)")
    tag = uuid.uuid4().hex[:12]
    topo = Topology(exchange=f"test.metrics.{tag}", queue=f"test.htcondor.{tag}")
    yield topo
    topo.delete()


def run_module(module: str, *args: str, timeout: float = 30, env: dict | None = None):
    """Run `python -m module args` as Telegraf's exec plugin would; returns CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TPV_COLLECTOR_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def telegraf_write(influxdb, output: str, host: str = "galaxy-test", now_ns: int | None = None):
    """What Telegraf does with an exec plugin's stdout: parse the influx data format, add its
    global `host` tag, stamp points that carry no timestamp with the collection time, and POST
    the batch to /write. Returns the number of points written."""
    stamp = now_ns if now_ns is not None else time.time_ns()
    lines = []
    for p in parse_lines(output.splitlines()):
        tags = dict(p.tags) | {"host": host}
        lines.append(format_point(p.measurement, tags, p.fields, p.time_ns or stamp))
    if lines:
        influxdb.write(lines)
    return len(lines)
