"""Keeps the current metrics in memory; a background thread refreshes them.

A rank request reads `current` only: it never waits on a source. When a refresh fails the last
good view stays (its points age and turn stale on their own) and the failure is recorded for
/health and the explanation. A refresh still running after `deadline_s` (the source's own
deadline plus a margin) is reported by `overrun_s`, so /health says "degraded" while it hangs
rather than "ok" until it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from broker.metrics.view import MetricsView, SourceError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Source(Protocol):
    name: str

    def fetch(self) -> MetricsView: ...


@dataclass(frozen=True)
class RefreshStatus:
    last_success_s: float | None
    last_attempt_s: float | None
    last_error: str | None
    refreshes: int
    failures: int


class MetricsCache(Generic[T]):
    """Holds `derive(view)`: the view plus whatever the ranking derives from it once."""

    def __init__(
        self,
        source: Source,
        derive: Callable[[MetricsView], T],
        refresh_s: float,
        deadline_s: float | None = None,
    ):
        self.source = source
        self.refresh_s = refresh_s
        self.deadline_s = refresh_s if deadline_s is None else deadline_s
        self._running_since: float | None = None  # monotonic start of the refresh under way
        self._derive = derive
        self._current = derive(MetricsView(source=f"{source.name}:not-loaded"))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = RefreshStatus(None, None, None, 0, 0)

    @property
    def current(self) -> T:
        return self._current

    @property
    def status(self) -> RefreshStatus:
        return self._status

    def refresh(self) -> bool:
        """Fetch once; True when a new view is in place."""
        started = time.time()
        self._running_since = time.monotonic()
        try:
            derived = self._derive(self.source.fetch())
        except SourceError as exc:
            self._record(started, str(exc), ok=False)
            log.warning("metrics refresh failed, keeping the last good view: %s", exc)
            return False
        except Exception as exc:  # a bug in a source must not kill the refresh loop
            self._record(started, f"unexpected {type(exc).__name__}: {exc}", ok=False)
            log.exception("metrics refresh crashed, keeping the last good view")
            return False
        finally:
            self._running_since = None
        self._current = derived
        self._record(started, None, ok=True)
        return True

    def overrun_s(self) -> float | None:
        """How long the refresh under way has run, when that is longer than `deadline_s`."""
        since = self._running_since
        if since is None:
            return None
        running = time.monotonic() - since
        return running if running > self.deadline_s else None

    def _record(self, started: float, error: str | None, ok: bool) -> None:
        with self._lock:
            s = self._status
            was_failing = s.last_error is not None
            self._status = RefreshStatus(
                last_success_s=started if ok else s.last_success_s,
                last_attempt_s=started,
                last_error=error,
                refreshes=s.refreshes + 1,
                failures=s.failures + (0 if ok else 1),
            )
        if ok and was_failing:
            log.info("metrics source %s is back", self.source.name)

    def start(self) -> None:
        """Load once now (best effort), then refresh every `refresh_s` in a daemon thread."""
        self.refresh()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="metrics-refresh", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
