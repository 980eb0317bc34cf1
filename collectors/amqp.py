"""AMQP plumbing shared by producer, consumer and tests: connecting (amqp:// and amqps:// with
a CA file) and declaring the topology.

Both ends declare the exchange (declarations are idempotent), so whichever starts first creates
it. Only the consumer declares its queue: the producer must not know consumer queue names, and
publishes with `mandatory` so a message nobody would receive fails loudly instead of vanishing.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import (
    AMQPConnectorException,
    AMQPConnectorStackTimeout,
)

from collectors.errors import EXIT_CONFIG, CollectorError
from collectors.settings import CollectorSettings, redact

# Everything pika raises when RabbitMQ is unreachable, slow or drops the connection: exit 3
# (transient), one line. The connection workflow's exceptions (`AMQPConnectorStackTimeout` when
# the AMQP handshake does not finish within `stack_timeout`, `AMQPConnectionWorkflowFailed`,
# ...) derive from `AMQPConnectorException`, not from `AMQPError`, so both are listed; OSError
# covers sockets, TLS and timeouts.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPError,
    AMQPConnectorException,
    OSError,
)


def describe(exc: BaseException) -> str:
    """pika wraps the socket error a few levels deep (`args[0]`, `.exception`); dig out the
    most specific reason so the one stderr line says "Connection refused", not a class name."""
    for _ in range(5):
        inner = getattr(exc, "exception", None)
        if not isinstance(inner, BaseException) and exc.args:
            inner = exc.args[0]
        if not isinstance(inner, BaseException):
            break
        exc = inner
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, TimeoutError | pika.exceptions.AMQPError) and not str(exc).strip("()' "):
        return type(exc).__name__
    name = type(exc).__name__.removeprefix("AMQPConnector")
    text = str(exc).strip()
    return f"{name}: {text}" if text else name


def dead_letter_names(queue: str) -> tuple[str, str]:
    """(exchange, queue) receiving what the consumer rejects: `<queue>.dead` for both."""
    return f"{queue}.dead", f"{queue}.dead"


def connection_parameters(url: str, ca_file: str | None, timeout_s: float) -> pika.URLParameters:
    try:
        params = pika.URLParameters(url)
    except Exception as exc:  # pika raises assorted types for a bad URL
        raise CollectorError(f"invalid AMQP URL {redact(url)}: {exc}", EXIT_CONFIG) from None
    if url.startswith("amqps://"):
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise CollectorError(f"cannot load CA file {ca_file}: {exc}", EXIT_CONFIG) from None
        params.ssl_options = pika.SSLOptions(context, params.host)
    # One attempt: a timer or Telegraf runs us again soon; retrying here would only eat the
    # time budget and hide the outage.
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = timeout_s
    params.stack_timeout = timeout_s
    params.blocked_connection_timeout = timeout_s
    return params


def connect(settings: CollectorSettings, timeout_s: float | None = None) -> pika.BlockingConnection:
    timeout = timeout_s if timeout_s is not None else settings.timeout_s
    params = connection_parameters(settings.amqp_url, settings.amqp_ca_file, timeout)
    try:
        return pika.BlockingConnection(params)
    except pika.exceptions.ProbableAuthenticationError:
        raise CollectorError(
            f"RabbitMQ at {settings.redacted_url()} refused the credentials", EXIT_CONFIG
        ) from None
    except pika.exceptions.ProbableAccessDeniedError:
        raise CollectorError(
            f"RabbitMQ at {settings.redacted_url()} denied access to the virtual host", EXIT_CONFIG
        ) from None
    except AMQPConnectorStackTimeout:
        raise CollectorError(
            f"RabbitMQ at {settings.redacted_url()} is unreachable: no AMQP handshake within "
            f"{timeout:g} s (overloaded, or not a RabbitMQ port?)"
        ) from None
    except TRANSIENT_ERRORS as exc:
        raise CollectorError(
            f"RabbitMQ at {settings.redacted_url()} is unreachable: {describe(exc)}"
        ) from None


@contextlib.contextmanager
def opened(
    settings: CollectorSettings, timeout_s: float | None = None
) -> Iterator[pika.BlockingConnection]:
    """`connect`, then close the connection whatever happens (quietly: the error that matters
    is the one that ended the block)."""
    connection = connect(settings, timeout_s)
    try:
        yield connection
    finally:
        if connection.is_open:
            with contextlib.suppress(*TRANSIENT_ERRORS):
                connection.close()


def declare_exchange(channel, exchange: str) -> None:
    channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)


def declare_consumer_topology(channel, exchange: str, queue: str, binding_key: str) -> int:
    """Exchange, dead-letter exchange + queue, the durable work queue bound to the exchange.
    Returns the number of messages ready in the work queue."""
    declare_exchange(channel, exchange)
    dlx, dlq = dead_letter_names(queue)
    channel.exchange_declare(exchange=dlx, exchange_type="fanout", durable=True)
    channel.queue_declare(queue=dlq, durable=True)
    channel.queue_bind(queue=dlq, exchange=dlx)
    ok = channel.queue_declare(queue=queue, durable=True, arguments={"x-dead-letter-exchange": dlx})
    channel.queue_bind(queue=queue, exchange=exchange, routing_key=binding_key)
    return ok.method.message_count
