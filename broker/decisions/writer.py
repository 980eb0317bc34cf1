"""The decision log's writer: buffered decisions to InfluxDB `/write`, in the background.

An asyncio task on the server's own event loop, not a thread: formatting is CPU work that
costs the requests what it costs wherever it runs, but a thread would hold the interpreter
lock for up to its switch interval (5 ms) at a time and add that to a request's latency. The
task formats decision by decision and yields to the loop every `_SLICE_S`, so a request waits
at most that long for it; the POST itself is asynchronous I/O.

Every `flush_s` it takes up to `batch_points` points from the buffer and posts them as one
request (InfluxDB 1.x line protocol, precision ns, the metric source's URL, database,
credentials (its token, else its user and password) and `timeout_s` as the deadline of the
whole exchange). While InfluxDB fails
(unreachable, too slow, 5xx, 401/403/404) that batch is retried with a doubling wait up to
`retry_max_s`, and new decisions wait in the bounded buffer (the oldest dropped when full:
`broker.decisions.log`). A batch InfluxDB refuses as malformed (400, 413) would fail again:
it is counted as rejected and logged, never retried. Retrying a batch InfluxDB did write is
harmless: same series, same timestamps, same values. At shutdown the writer tries for
`shutdown_s` to write what is left and counts the rest as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import anyio
import httpx

from broker.config import DecisionLogSettings, InfluxSettings
from broker.decisions.lines import DecisionLines
from broker.decisions.log import Decision, DecisionLog
from broker.metrics.influx import InfluxConnection
from metric_contract.lineprotocol import LineProtocolError

log = logging.getLogger(__name__)
_SLICE_S = 0.001  # longest the formatting runs before the loop serves requests again
_REFUSED = (400, 413)  # InfluxDB will refuse the same body again


class DecisionWriter:
    def __init__(
        self, decisions: DecisionLog, influx: InfluxSettings, settings: DecisionLogSettings
    ):
        self.decisions = decisions
        self.settings = settings
        self.connection = InfluxConnection(influx)
        self.lines = DecisionLines()
        self.written = 0  # decisions InfluxDB took
        self.rejected = 0  # decisions InfluxDB refused or line protocol cannot carry
        self.failures = 0  # failed writes (each retried)
        self.last_error: str | None = None
        self.last_write_s: float | None = None
        self._pending: tuple[int, bytes] | None = None  # (decisions, body) being retried
        self._formatting = 0  # decisions taken from the buffer and being formatted
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def pending(self) -> int:
        """Decisions taken from the buffer and not yet written."""
        return self._pending[0] if self._pending else 0

    def start(self) -> None:
        """Start the background task on the running loop (the app's lifespan)."""
        if self._task is None:
            timeout = self.connection.settings.timeout_s
            conn = self.connection
            self._client = httpx.AsyncClient(timeout=timeout, auth=conn.auth, headers=conn.headers)
            self._task = asyncio.create_task(self._run(), name="decision-log-writer")

    async def stop(self) -> None:
        """Write what is left (one try per batch, within `shutdown_s`); the rest is dropped."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):  # wait_for then cancels the task
                await asyncio.wait_for(self._task, self.settings.shutdown_s)
            self._task = None
        lost = self.pending + self._formatting
        lost += len(self.decisions.take(max(self.decisions.buffered_points, 1)))
        if lost:
            self.decisions.lost(lost)
            log.warning(
                "decision log: %d decisions not written at shutdown (%s)", lost, self.last_error
            )
        self._pending = None
        self._formatting = 0
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        delay = self.settings.flush_s
        while True:
            with anyio.move_on_after(delay):
                await self._wake.wait()
            try:
                ok = await self._drain()
            except Exception:  # a bug here must not end the log
                log.exception("decision log writer failed; retrying")
                ok = False
            if self._stopping:
                return  # the last drain is done, or failed: stop() counts what is left
            if ok:
                delay = self.settings.flush_s
            else:
                delay = min(max(delay, self.settings.flush_s) * 2, self.settings.retry_max_s)

    async def _drain(self) -> bool:
        """Write batches until the buffer is empty (True) or a write fails (False)."""
        while True:
            if self._pending is None:
                batch = self.decisions.take(self.settings.batch_points)
                if not batch:
                    return True
                self._formatting = len(batch)  # counted as lost if cancelled meanwhile
                self._pending = await self._format(batch)
                self._formatting = 0
            if self._pending[0] and not await self._post(self._pending):
                return False
            self._pending = None

    async def _format(self, batch: list[Decision]) -> tuple[int, bytes]:
        lines: list[str] = []
        count = 0
        started = time.perf_counter()
        for decision in batch:
            try:
                lines.append(self.lines.format(decision))
                count += 1
            except (LineProtocolError, ValueError, OverflowError) as exc:
                # an id line protocol cannot carry; a NaN or infinite prediction (a bug in a
                # term): this decision is lost and counted, the batch goes on
                self.rejected += 1
                log.warning("decision log: job %s not written: %s", decision.job_id, exc)
            if time.perf_counter() - started > _SLICE_S:
                await asyncio.sleep(0)
                started = time.perf_counter()
        lines.append("")
        return count, "\n".join(lines).encode()

    async def _post(self, pending: tuple[int, bytes]) -> bool:
        count, body = pending
        conn = self.connection
        params = {"db": conn.settings.database, "precision": "ns"}
        assert self._client is not None
        try:
            with anyio.fail_after(conn.settings.timeout_s):
                response = await self._client.post(
                    f"{conn.base_url}/write", params=params, content=body
                )
        except (TimeoutError, httpx.TimeoutException):
            return self._failed(
                f"InfluxDB at {conn.shown_url} did not answer within {conn.settings.timeout_s} s"
            )
        except httpx.HTTPError as exc:
            return self._failed(conn.redact(f"InfluxDB at {conn.shown_url} is unreachable: {exc}"))
        if response.status_code == 204:
            if self.last_error is not None:
                log.info("decision log: InfluxDB at %s takes writes again", conn.shown_url)
            self.written += count
            self.last_error = None
            self.last_write_s = time.time()
            return True
        text = conn.redact(response.content[:200].decode("utf-8", "replace"))
        error = f"InfluxDB at {conn.shown_url} answered HTTP {response.status_code}: {text}"
        if response.status_code in _REFUSED:
            self.rejected += count
            self.last_error = error
            log.error("decision log: %d decisions refused, not retried: %s", count, error)
            return True
        return self._failed(error)

    def _failed(self, error: str) -> bool:
        if self.last_error is None:
            log.warning("decision log: cannot write, keeping decisions and retrying: %s", error)
        self.failures += 1
        self.last_error = error
        return False
