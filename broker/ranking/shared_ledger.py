"""The in-flight ledger shared by several broker processes (uvicorn workers, replicas) via Redis.

Every process keeps the whole ledger in its own memory (a `RoutedLedger`), so a request reads
memory only and never waits on Redis, as with one process. The processes mirror one another
through one Redis stream:

- a decision is added to memory at once and queued for a writer thread, which appends what has
  queued up within `LINGER_S` to the stream as one entry (one round trip per batch);
- a reader thread blocks on the stream (`XREAD BLOCK`, in bulk at most every
  `READ_INTERVAL_S`) and adds the other processes' decisions to memory as they arrive, within
  about 20 ms after they were taken; a process that starts
  first reads what is still within the ledger's horizon.

So herding protection holds across processes, except for two decisions taken in different
processes within those milliseconds (reading Redis on every request instead would close
that gap at the price of a round trip on the request path, and of requests that wait on
Redis when it is slow). When Redis cannot be reached, requests do not notice: each
process goes on counting its own decisions (and what it had received), `/health` says
degraded, both threads retry every `ledger.retry_s`, and the decisions taken meanwhile are sent
when Redis is back (bounded; expired ones are dropped).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections import deque
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from broker.config import LedgerSettings
from broker.ranking.routed import RoutedLedger

log = logging.getLogger(__name__)

STREAM_MAXLEN = 100_000  # batches Redis keeps (approximately): beyond, the oldest are trimmed
MAX_PENDING = 50_000  # decisions kept for a Redis that is away; beyond, the oldest are dropped
BATCH = 1000  # decisions per stream entry, and stream entries per read
BLOCK_MS = 1000  # how long one XREAD waits for news before it asks again
# The writer waits this long after a decision for more to send in the same stream entry: under
# load one small write per few ms instead of one per request (the GIL is the request path's
# too), and the other processes decode one entry per batch.
LINGER_S = 0.01
# After the reader got news it waits this long before it asks again, so a busy stream is read
# in bulk, at most every few ms, and the other processes' decisions arrive within about
# LINGER_S + READ_INTERVAL_S + one round trip.
READ_INTERVAL_S = 0.01
_STOP = object()


def redact_redis_url(url: str) -> str:
    """`url` without its password: safe for /health and the log."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"***@{netloc}"))
    except ValueError:
        return "<unparseable URL>"


class SharedLedger(RoutedLedger):
    """A `RoutedLedger` whose decisions every process sharing `settings.redis_url` sees.
    `start()` begins mirroring (the app's start-up), `stop()` ends it."""

    def __init__(self, grace_s: float, horizon_s: float, settings: LedgerSettings):
        super().__init__(grace_s, horizon_s)
        assert settings.redis_url
        self.settings = settings
        self.shown_url = redact_redis_url(settings.redis_url)
        self.stream = f"{settings.key_prefix}routed"
        self.process_id = uuid.uuid4().hex[:16]
        self._own = self.process_id.encode()
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: deque[list[Any]] = deque(maxlen=MAX_PENDING)
        self._stopping = threading.Event()
        self._errors: dict[str, str | None] = {"writer": None, "reader": "not connected yet"}
        self._received = 0
        # no retries inside redis-py: the loops retry every retry_s, and /health says at once
        self._writer_client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.timeout_s,
            socket_connect_timeout=settings.timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._reader_client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=BLOCK_MS / 1000 + settings.timeout_s,
            socket_connect_timeout=settings.timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._threads = [
            threading.Thread(target=self._write_loop, name="ledger-writer", daemon=True),
            threading.Thread(target=self._read_loop, name="ledger-reader", daemon=True),
        ]

    # -- the request path: memory only -------------------------------------------------------

    def add(
        self, site: str, now_s: float, staging_s: float, cores: float, mem_mb: float, gpus: float
    ) -> None:
        visible_at = now_s + staging_s + self.grace_s
        self.push(site, visible_at, cores, mem_mb, gpus)
        self._outbox.put([site, visible_at, cores, mem_mb, gpus])

    # -- lifecycle and state ------------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Send what is queued (if Redis is there) and end both threads."""
        self._stopping.set()
        self._outbox.put(_STOP)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        self._writer_client.close()
        self._reader_client.close()

    @property
    def error(self) -> str | None:
        """Why the ledger is not shared right now (None: it is)."""
        problems = [f"{who}: {err}" for who, err in self._errors.items() if err]
        if not problems:
            return None
        return (
            f"Redis ledger at {self.shown_url} unavailable ({'; '.join(problems)}): "
            "this process counts only its own decisions until it is back"
        )

    def describe(self, now_s: float) -> dict[str, Any]:
        return {
            "shared": "redis",
            "url": self.shown_url,
            "key_prefix": self.settings.key_prefix,
            "jobs_in_flight": self.jobs(now_s),
            "received": self._received,
            "error": self.error,
        }

    def _failed(self, who: str, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}".replace(self.settings.redis_url or "", "***")
        if self._errors[who] is None:
            log.warning("ledger %s: Redis at %s failed: %s", who, self.shown_url, message)
        self._errors[who] = message

    def _recovered(self, who: str) -> None:
        if self._errors[who] is not None:
            if who == "reader" and self._errors[who] != "not connected yet":
                log.warning("ledger %s: Redis at %s is back", who, self.shown_url)
            self._errors[who] = None

    # -- writer: this process's decisions -> the stream ---------------------------------------

    def _write_loop(self) -> None:
        while True:
            try:
                item = self._outbox.get(timeout=self.settings.retry_s if self._pending else None)
            except queue.Empty:
                item = None  # nothing new: retry what is pending
            stop = item is _STOP
            if item is not None and not stop:
                self._pending.append(item)
                self._stopping.wait(LINGER_S)  # let the decisions of a burst join this one
            while len(self._pending) < MAX_PENDING:  # everything else already queued
                try:
                    more = self._outbox.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                else:
                    self._pending.append(more)
            self._flush()
            if stop or (self._stopping.is_set() and not self._pending):
                return
            if self._pending:  # Redis is away: wait before trying again
                self._stopping.wait(self.settings.retry_s)
                if self._stopping.is_set():
                    self._flush()
                    return

    def _flush(self) -> None:
        horizon = time.time() - self.horizon_s
        while self._pending and self._pending[0][1] <= horizon:
            self._pending.popleft()  # shown by the metrics by now: nobody needs it
        if not self._pending:
            return
        batches = [list(self._pending)[i : i + BATCH] for i in range(0, len(self._pending), BATCH)]
        try:
            pipe = self._writer_client.pipeline(transaction=False)
            for batch in batches:  # one stream entry per batch of decisions
                pipe.xadd(
                    self.stream,
                    {"p": self.process_id, "e": json.dumps(batch)},
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._failed("writer", exc)
            return
        self._pending.clear()
        self._recovered("writer")

    # -- reader: the other processes' decisions -> memory -------------------------------------

    def _read_loop(self) -> None:
        # first read: what is still within the horizon (stream ids are Redis's ms clock)
        last_id = f"{int((time.time() - self.horizon_s) * 1000)}-0"
        while not self._stopping.is_set():
            try:
                if self._errors["reader"] is not None:  # (re)connecting: say so at once
                    self._reader_client.ping()
                    self._recovered("reader")
                answer: Any = self._reader_client.xread(
                    {self.stream: last_id}, count=BATCH, block=BLOCK_MS
                )
            except (redis.RedisError, OSError) as exc:
                self._failed("reader", exc)
                self._stopping.wait(self.settings.retry_s)
                continue
            self._recovered("reader")
            for _stream, entries in answer or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._receive(fields)
            if answer:
                self._stopping.wait(READ_INTERVAL_S)

    def _receive(self, fields: dict[bytes, bytes]) -> None:
        if fields.get(b"p") == self._own:
            return  # in memory since the requests that decided them
        try:
            batch = json.loads(fields[b"e"])
            for site, visible_at, cores, mem_mb, gpus in batch:
                self.push(str(site), float(visible_at), float(cores), float(mem_mb), float(gpus))
                self._received += 1
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ledger: ignoring a malformed entry in %s: %r", self.stream, exc)
