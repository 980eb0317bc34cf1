"""Jobs the broker has just sent somewhere that the metrics cannot show yet.

Cluster usage arrives once a minute, and a routed job reaches HTCondor only after its inputs
are staged; every decision in between would otherwise see the same free slot and send a burst
of jobs to one pool (herding). The ledger remembers each first choice (cores, memory, GPUs) per
site until that site reports a point collected after the job should have reached its queue.
Memory only; one lock; bounded.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass

MAX_PER_SITE = 10_000


@dataclass(frozen=True)
class Routed:
    visible_at_s: float  # when the job should be in the site's HTCondor queue
    cores: float
    mem_mb: float
    gpus: float


@dataclass(frozen=True)
class InFlight:
    jobs: int = 0
    cores: float = 0.0
    mem_mb: float = 0.0
    gpus: float = 0.0


NOTHING = InFlight()


class RoutedLedger:
    def __init__(self, grace_s: float, horizon_s: float):
        self.grace_s = grace_s  # Galaxy -> Pulsar -> condor_submit, beyond the data staging
        self.horizon_s = horizon_s  # forget entries this old whatever the metrics say
        self._sites: dict[str, deque[Routed]] = defaultdict(deque)
        self._lock = threading.Lock()

    def add(self, site: str, now_s: float, staging_s: float, cores, mem_mb, gpus) -> None:
        with self._lock:
            entries = self._sites[site]
            entries.append(Routed(now_s + staging_s + self.grace_s, cores, mem_mb, gpus))
            if len(entries) > MAX_PER_SITE:
                entries.popleft()

    def in_flight(self, site: str, reported_at_s: float, now_s: float) -> InFlight:
        """What was sent to `site` and is not yet in its point collected at `reported_at_s`."""
        entries = self._sites.get(site)
        if not entries:
            return NOTHING
        with self._lock:
            live = [
                e
                for e in entries
                if e.visible_at_s > reported_at_s and e.visible_at_s > now_s - self.horizon_s
            ]
            self._sites[site] = deque(live)
        if not live:
            return NOTHING
        return InFlight(
            len(live),
            sum(e.cores for e in live),
            sum(e.mem_mb for e in live),
            sum(e.gpus for e in live),
        )
