"""RabbitMQ for the collector integration tests: the server already running on 127.0.0.1:5672
(guest/guest), and a per-test topology (exchange, queue, dead-letter pair) with unique names
that is deleted afterwards."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pika

from collectors.amqp import dead_letter_names
from collectors.settings import CollectorSettings

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def rabbitmq_available() -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(AMQP_URL + "?connection_attempts=1")).close()
        return True
    except Exception:
        return False


def _key_of(body: bytes) -> str:
    try:
        site = json.loads(body)["site"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return "htcondor.test"
    return f"htcondor.{site}" if isinstance(site, str) else "htcondor.test"


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

    def publish_raw(self, bodies: list[bytes], routing_key: str | None = None) -> None:
        """Publish persistent messages and wait until the queue holds them. Without publisher
        confirms (one round trip each would make thousands slow); the wait replaces them.
        Each goes with its own site's routing key, as a producer sends it, unless one is given
        (a body without a readable site goes with `htcondor.test`)."""
        connection, ch = self.channel()
        try:
            before = ch.queue_declare(self.queue, passive=True).method.message_count
            for body in bodies:
                key = routing_key or _key_of(body)
                ch.basic_publish(self.exchange, key, body, pika.BasicProperties(delivery_mode=2))
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
