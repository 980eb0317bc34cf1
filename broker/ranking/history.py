"""What the ranking derives from the history metrics, computed once per metrics refresh.

Run times and outcomes change daily at most, so their pooled estimates (`RunTimes`,
`SuccessRates`) are computed when a new view arrives, never on the request path; a request
looks up a tool's terms at its candidates, memoised per view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from broker.config import RankingSettings
from broker.metrics.series import Outcomes, RunStats
from broker.metrics.view import MetricsView
from broker.ranking.run_times import Estimate, RunTimes
from broker.ranking.success_rates import SuccessRates
from broker.success.model import SuccessModel


class ToolEstimate(NamedTuple):
    run: Estimate
    success: Estimate
    queue_s: float | None  # median queue time over enough runs, else None


class ToolTerms(NamedTuple):
    """A tool's terms at each of a candidate list's destinations; the figures as arrays, for
    the request's arithmetic over all candidates at once."""

    at: list[ToolEstimate]
    run_s: NDArray[np.float64]
    success: NDArray[np.float64]
    queue_s: NDArray[np.float64]  # NaN: too few runs


# Per view, memoised terms: bounded, since a request chooses its tool id and candidates.
_MEMO_MAX = 4096


@dataclass
class History:
    run_times: RunTimes
    success: SuccessRates
    _memo: dict[tuple[str | None, str], ToolEstimate] = field(default_factory=dict, repr=False)
    _lists: dict[tuple[str | None, tuple[str, ...]], ToolTerms] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def build(
        cls,
        view: MetricsView,
        settings: RankingSettings,
        max_age_s: float,
        features: Mapping[str, Mapping[str, str]] | None = None,
        now: float | None = None,
    ) -> History:
        """`features`: destination id -> its configured features (`destinations.<id>.features`);
        `now`: the clock `max_age_s` is taken at (default: the view's)."""
        now = view.now() if now is None else now
        # pooled over Galaxy servers from each server's aggregates that are recent enough
        cutoff = now - max_age_s
        runtimes = {}
        for k, r in view.runtimes.items():
            kept = r.since(cutoff)
            if kept is not None and kept.count > 0 and kept.median_run is not None:
                runtimes[k] = kept
        outcomes = {}
        for k, o in view.outcomes.items():
            kept_o = o.since(cutoff)
            if kept_o is not None:
                outcomes[k] = kept_o
        feats = {d: {k: str(v) for k, v in f.items()} for d, f in (features or {}).items()}
        return cls(RunTimes(settings, runtimes), SuccessRates(settings, outcomes, feats))

    @property
    def runtimes(self) -> dict[tuple[str, str], RunStats]:
        return self.run_times.runtimes

    @property
    def outcomes(self) -> dict[tuple[str, str], Outcomes]:
        return self.success.outcomes

    @property
    def typical_run(self) -> dict[str, float]:
        return self.run_times.typical_run

    @property
    def success_models(self) -> dict[str, SuccessModel]:
        return self.success.success_models

    def at(self, tool: str | None, dest: str) -> ToolEstimate:
        """The tool's run time, success probability and past queue time at a destination."""
        key = (tool, dest)
        found = self._memo.get(key)
        if found is None:
            found = ToolEstimate(
                self.run_times.estimate(tool, dest),
                self.success.estimate(tool, dest),
                self.run_times.queue_time(tool, dest),
            )
            if len(self._memo) < _MEMO_MAX:
                self._memo[key] = found
        return found

    def terms(self, tool: str | None, dests: tuple[str, ...]) -> ToolTerms:
        """`at` for each destination, the figures as read-only arrays. Memoised per candidate
        list (shared by the request threads): the jobs of a tool mostly come with the same
        candidates, and the list changes only with TPV's config (bounded all the same: a new
        view starts a new History)."""
        key = (tool, dests)
        found = self._lists.get(key)
        if found is None:
            at = [self.at(tool, d) for d in dests]
            figures = np.array(
                [(a.run.value, a.success.value, math.nan if a.queue_s is None else a.queue_s)
                 for a in at],
                dtype=np.float64,
            ).reshape(-1, 3)  # fmt: skip
            figures.setflags(write=False)
            found = ToolTerms(at, figures[:, 0], figures[:, 1], figures[:, 2])
            if len(self._lists) < _MEMO_MAX:
                self._lists[key] = found
        return found
