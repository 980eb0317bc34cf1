"""Everything one ranking decision reads besides the job: one object, not parallel parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.config import Settings
from broker.metrics.cache import RefreshStatus
from broker.ranking.derived import DerivedView
from broker.ranking.routed import RoutedLedger

if TYPE_CHECKING:  # the decision log imports the ranking's types
    from broker.decisions.log import DecisionLog


@dataclass(slots=True)
class RankContext:
    """The settings, the current derived view, the source's refresh status (for the
    explanation), the in-flight ledger (None: nothing is recorded, as for a snapshot), the
    clock (None: the view's own, i.e. the wall clock for a live source), which Galaxy server
    asked (for the log line) and the decision log (None: the decision is neither counted nor
    logged, as for an explain request). Built per request and not changed afterwards."""

    settings: Settings
    derived: DerivedView
    status: RefreshStatus | None = None
    ledger: RoutedLedger | None = None
    now_s: float | None = None
    caller: str | None = None  # the name of the token the request carried (`broker.auth`)
    decisions: DecisionLog | None = None

    def now(self) -> float:
        return self.derived.view.now() if self.now_s is None else self.now_s
