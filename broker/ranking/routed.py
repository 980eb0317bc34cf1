"""Jobs the broker has just sent somewhere that the metrics cannot show yet.

Cluster usage arrives once a minute, and a routed job reaches HTCondor only after its inputs
are staged; every decision in between would otherwise see the same free slot and send a burst
of jobs to one pool (herding). The ledger remembers each first choice (cores, memory, GPUs) per
site until that site reports a point collected after the job should have reached its queue.
Memory only; one lock; bounded; a request's cost is the same with ten or ten thousand jobs in
flight (running sums per site, entries expire soonest-visible first).
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_PER_SITE = 10_000


@dataclass(frozen=True)
class InFlight:
    jobs: int = 0
    cores: float = 0.0
    mem_mb: float = 0.0
    gpus: float = 0.0


NOTHING = InFlight()
_NONE = (0, 0.0, 0.0, 0.0)


@dataclass
class _Site:
    """One site's entries, soonest visible first, and their running sums: a request reads the
    sums, so its cost does not grow with what is in flight."""

    # (visible_at_s, sequence, cores, mem_mb, gpus): the sequence keeps equal times in order
    heap: list[tuple[float, int, float, float, float]] = field(default_factory=list)
    cores: float = 0.0
    mem_mb: float = 0.0
    gpus: float = 0.0

    def push(self, entry: tuple[float, int, float, float, float]) -> None:
        heapq.heappush(self.heap, entry)
        self.cores += entry[2]
        self.mem_mb += entry[3]
        self.gpus += entry[4]

    def pop(self) -> None:
        _, _, cores, mem_mb, gpus = heapq.heappop(self.heap)
        self.cores -= cores
        self.mem_mb -= mem_mb
        self.gpus -= gpus
        if not self.heap:  # no drift left over from the subtractions
            self.cores = self.mem_mb = self.gpus = 0.0


class RoutedLedger:
    def __init__(self, grace_s: float, horizon_s: float):
        self.grace_s = grace_s  # Galaxy -> Pulsar -> condor_submit, beyond the data staging
        self.horizon_s = horizon_s  # forget entries this old whatever the metrics say
        self._sites: dict[str, _Site] = {}
        self._added = 0
        self._lock = threading.Lock()

    def add(
        self, site: str, now_s: float, staging_s: float, cores: float, mem_mb: float, gpus: float
    ) -> None:
        self.push(site, now_s + staging_s + self.grace_s, cores, mem_mb, gpus)

    def push(
        self, site: str, visible_at_s: float, cores: float, mem_mb: float, gpus: float
    ) -> None:
        """Record a job that `site`'s metrics will show from `visible_at_s` on (the shared
        ledger adds the other processes' jobs this way, as they decided them)."""
        with self._lock:
            entries = self._sites.setdefault(site, _Site())
            self._added += 1
            entries.push((visible_at_s, self._added, cores, mem_mb, gpus))
            if len(entries.heap) > MAX_PER_SITE:
                entries.pop()  # the one due soonest: the least of what the bound forgets

    def in_flight(self, site: str, reported_at_s: float, now_s: float) -> InFlight:
        """What was sent to `site` and is not yet in its point collected at `reported_at_s`.
        An entry that point should already show, or older than the horizon, is forgotten."""
        jobs, cores, mem_mb, gpus = self.sums([(site, reported_at_s)], now_s)[0]
        return InFlight(jobs, cores, mem_mb, gpus) if jobs else NOTHING

    def sums(
        self, sites: Sequence[tuple[str, float]], now_s: float
    ) -> list[tuple[int, float, float, float]]:
        """`in_flight` of several (site, reported_at_s) at once, under one lock, as plain
        (jobs, cores, mem_mb, gpus) tuples: a request asks this for every site it ranks."""
        oldest = now_s - self.horizon_s
        out = []
        with self._lock:
            for site, reported_at_s in sites:
                entries = self._sites.get(site)
                if entries is None:
                    out.append(_NONE)
                    continue
                shown = max(reported_at_s, oldest)
                heap = entries.heap
                while heap and heap[0][0] <= shown:
                    entries.pop()
                out.append(
                    (len(heap), entries.cores, entries.mem_mb, entries.gpus) if heap else _NONE
                )
        return out

    @property
    def error(self) -> str | None:
        """Why the ledger is not shared as configured (None: in-process, nothing to share)."""
        return None

    def describe(self, now_s: float) -> dict[str, object]:
        """The ledger's part of /health."""
        return {"shared": "process", "jobs_in_flight": self.jobs(now_s), "error": None}

    def start(self) -> None:
        """Nothing to start: memory only (the shared ledger mirrors through Redis)."""

    def stop(self) -> None:
        """Nothing to stop."""

    def jobs(self, now_s: float) -> int:
        """Jobs in flight across all sites, whatever their sites last reported (for /health:
        what this process would count against the sites if no new point arrived)."""
        shown = now_s - self.horizon_s
        with self._lock:
            total = 0
            for entries in self._sites.values():
                while entries.heap and entries.heap[0][0] <= shown:
                    entries.pop()
                total += len(entries.heap)
            return total
