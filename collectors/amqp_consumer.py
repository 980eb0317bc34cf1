"""Galaxy server: drain the HTCondor state messages and print them as line protocol for
Telegraf's exec input plugin.

    python -m collectors.amqp_consumer --amqp-url URL [--exchange E] [--queue Q]
                                       [--max-messages N] [--max-seconds S]

Each run declares its topology (durable queue bound to the exchange with `htcondor.*`, a
dead-letter exchange and queue `<queue>.dead`), drains what is ready within the budget, prints
one `htcondor_cluster_usage` line per message stamped with the message's `collected_at`, and
exits. Guarantees, and how:
- Nothing is lost: a message is acknowledged only after its line was written to stdout and
  stdout was flushed (lines are flushed in small batches, then acknowledged together). If the
  process dies before that, RabbitMQ redelivers the unacknowledged messages to the next run.
  Delivery is at-least-once; a duplicate line is harmless because InfluxDB keeps one point per
  series and timestamp.
- One bad message never blocks the rest: a message that fails `collectors.schema` validation,
  or makes parsing fail in any other way (JSON nested too deeply for the parser, any unexpected
  exception while parsing or formatting it), is rejected without requeue, RabbitMQ moves it to
  `<queue>.dead`, and one line on stderr says which and why. So is a message whose `site` is
  not the one of its routing key `htcondor.<site>`: each site's RabbitMQ user may publish only
  with its own key, so the key is who sent it. Without that, a message that
  crashes the run would stay at the head of the queue and stop every later run. Telegraf only
  reads stdout, so stderr never pollutes the metrics.
- The run ends within `--max-seconds` (keep it below Telegraf's exec `timeout`): messages
  prefetched but not yet printed go back to the queue when the consumer is cancelled.
- Nothing queued: no output, exit 0. RabbitMQ unreachable, slow to shake hands or lost while
  draining: one line on stderr, exit 3.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from collectors.errors import EXIT_CONFIG, EXIT_OK, CollectorError, run_cli
from collectors.schema import MessageError, parse_message, routing_key
from collectors.settings import (
    CollectorSettings,
    add_amqp_arguments,
    add_config_argument,
    load_settings,
    overrides_from,
)

PREFETCH = 1000  # messages in flight from RabbitMQ; bounds memory and what a crash redelivers
FLUSH_EVERY = 250  # lines per stdout flush + multiple-ack


def _log(message: str) -> None:
    print(f"amqp_consumer: {message}", file=sys.stderr, flush=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no message"


def drain(
    channel,
    queue: str,
    out: TextIO,
    max_messages: int,
    deadline: float,
    ready: int,
) -> tuple[int, int]:
    """Consume from `queue` until the `ready` messages counted when it was declared,
    `max_messages` of them, were handled or `deadline` (time.monotonic) passes: an exec run
    ends on the count, not on an idle timeout. Returns (lines printed, dead-lettered)."""
    printed = rejected = 0
    pending: list[str] = []
    last_tag: int | None = None

    def flush() -> None:
        nonlocal pending, last_tag
        if last_tag is None:
            return
        try:
            if pending:
                out.write("\n".join(pending) + "\n")
            out.flush()
        except (OSError, ValueError) as exc:  # stdout closed: Telegraf gave up on this run
            raise CollectorError(
                f"cannot write to stdout ({exc}); the unprinted messages stay queued"
            ) from None
        channel.basic_ack(delivery_tag=last_tag, multiple=True)
        pending, last_tag = [], None

    channel.basic_qos(prefetch_count=min(PREFETCH, max_messages))
    handled = 0
    limit = min(max_messages, ready)
    # The idle timeout only ends a run whose messages another consumer took meanwhile.
    idle = max(0.05, min(1.0, deadline - time.monotonic()))
    try:
        for method, _properties, body in channel.consume(queue, inactivity_timeout=idle):
            if method is None:  # nothing arrived within `idle`: the queue is drained
                break
            reason: str | None = None
            line: str | None = None
            try:
                state = parse_message(body)
                if method.routing_key != routing_key(state.site):
                    raise MessageError(
                        f"site {state.site!r} sent with routing key {method.routing_key!r}: a "
                        f"producer reports for its own site only ({routing_key(state.site)!r})"
                    )
                line = state.to_line()
            except MessageError as exc:
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001 - whatever one message does, it is its own
                reason = f"cannot be parsed ({type(exc).__name__}: {_first_line(exc)})"
            if reason is not None:
                # Settle earlier good lines first so the multiple-ack cannot cover this tag.
                flush()
                channel.basic_nack(delivery_tag=method.delivery_tag, requeue=False)
                rejected += 1
                source = method.routing_key or "?"
                _log(f"dead-lettered message from {source!r} (tag {method.delivery_tag}): {reason}")
            else:
                assert line is not None  # no reason means parse_message(...).to_line() returned
                pending.append(line)
                last_tag = method.delivery_tag
                printed += 1
                if len(pending) >= FLUSH_EVERY:
                    flush()
            handled += 1
            if handled >= limit or time.monotonic() >= deadline:
                break
        flush()
    finally:
        # Returns prefetched, unprinted messages to the queue (they were never acknowledged).
        channel.cancel()
    return printed, rejected


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amqp_consumer",
        description="Print queued HTCondor state messages as line protocol (Telegraf exec).",
    )
    add_config_argument(p)
    add_amqp_arguments(p)
    p.add_argument("--queue", help=f"durable queue to drain (default {CollectorSettings.queue})")
    p.add_argument(
        "--binding-key",
        help=f"routing key pattern to bind (default {CollectorSettings.binding_key})",
    )
    p.add_argument("--max-messages", type=int, help="stop after this many messages")
    p.add_argument(
        "--max-seconds",
        type=float,
        help=f"stop after this many seconds (default {CollectorSettings.max_seconds:g})",
    )
    return p


def consume(settings: CollectorSettings, out: TextIO) -> tuple[int, int]:
    import pika.exceptions

    from collectors.amqp import TRANSIENT_ERRORS, declare_consumer_topology, describe, opened

    started = time.monotonic()
    deadline = started + settings.max_seconds
    # Connecting may take at most the whole budget; what is left is for draining.
    with opened(settings, timeout_s=settings.max_seconds) as connection:
        try:
            channel = connection.channel()
            try:
                ready = declare_consumer_topology(
                    channel, settings.exchange, settings.queue, settings.binding_key
                )
            except pika.exceptions.ChannelClosedByBroker as exc:
                raise CollectorError(
                    f"cannot declare queue {settings.queue!r} / exchange {settings.exchange!r}: "
                    f"{exc.reply_text} (declared elsewhere with other arguments?)",
                    EXIT_CONFIG,
                ) from None
            if ready == 0:
                return 0, 0
            return drain(channel, settings.queue, out, settings.max_messages, deadline, ready)
        except TRANSIENT_ERRORS as exc:
            raise CollectorError(
                f"lost RabbitMQ at {settings.redacted_url()} while draining: {describe(exc)}; "
                "unacknowledged messages will be redelivered"
            ) from None


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = overrides_from(args)

    def run() -> int:
        settings = load_settings(args.config, overrides=overrides)
        printed, rejected = consume(settings, out or sys.stdout)
        if rejected:
            from collectors.amqp import dead_letter_names  # pika only when consuming

            dead = dead_letter_names(settings.queue)[1]
            _log(f"{printed} printed, {rejected} dead-lettered to {dead}")
        return EXIT_OK

    return run_cli("amqp_consumer", run)


if __name__ == "__main__":
    sys.exit(main())
