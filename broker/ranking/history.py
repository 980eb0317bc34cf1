"""What the ranking derives from the history metrics, computed once per metrics refresh.

Run times and outcomes change daily at most, so their pooled estimates (a tool's reference run
time, a destination's relative speed, success rates by tool and by destination, and the per-tool
success models on destination features) are computed when a new view arrives, never on the
request path. A success model is refitted only when its inputs changed (`_SUCCESS_FITS`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from broker.config import RankingSettings
from broker.metrics.view import MetricsView, Outcomes, RunStats
from broker.success.model import SuccessModel

log = logging.getLogger(__name__)

# The implicit feature naming a destination itself: its own record for a tool, shrunk towards
# what its other features predict (an admin feature of this name is overridden).
DESTINATION_FEATURE = "destination"
# Fitted per-tool success models by their exact inputs: refreshes every 30 s see the same daily
# outcomes, so most refreshes refit nothing. Bounded; only the refresh thread writes in practice.
_SUCCESS_FITS: OrderedDict[tuple, SuccessModel] = OrderedDict()
_SUCCESS_FITS_MAX = 4096
_SUCCESS_FITS_LOCK = threading.Lock()
# Bounds the run-time spread read from p95 / median (a p95 of 12x the median).
MAX_RUN_SIGMA = 1.5


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True)
class Estimate:
    value: float
    note: str


class ToolAt(NamedTuple):
    run: Estimate
    success: Estimate
    queue_s: float | None  # median queue time over enough runs, else None


class ToolTerms(NamedTuple):
    at: list[ToolAt]
    run_s: list[float]
    success: list[float]
    queue_s: list[float]  # NaN: too few runs


_TERMS_MAX = 4096


@dataclass
class History:
    settings: RankingSettings
    runtimes: dict[tuple[str, str], RunStats] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], Outcomes] = field(default_factory=dict)
    tool_reference_run: dict[str, tuple[float, float]] = field(default_factory=dict)
    speed: dict[str, float] = field(default_factory=dict)
    typical_run: dict[str, float] = field(default_factory=dict)
    global_success: float = 0.95
    tool_success: dict[str, float] = field(default_factory=dict)
    dest_success: dict[str, float] = field(default_factory=dict)
    # Destination id -> configured categorical features (os, cpu_arch, container, cvmfs, ...).
    features: dict[str, dict[str, str]] = field(default_factory=dict)
    # Tool -> its success model over destination features (tools with outcomes only).
    success_models: dict[str, SuccessModel] = field(default_factory=dict)
    # Tool -> mean / median of its run times (lognormal spread from gxadmin's median and p95)
    run_mean_factor: dict[str, float] = field(default_factory=dict)
    _dest_counts: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)
    # Per (tool, destination) estimates, memoised: they only change with a new view.
    _memo: dict[tuple[str | None, str], ToolAt] = field(default_factory=dict, repr=False)
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
        h = cls(
            settings=settings,
            runtimes={
                k: r
                for k, r in view.runtimes.items()
                if now - r.time_s <= max_age_s and r.count > 0 and r.median_run is not None
            },
            outcomes={k: o for k, o in view.outcomes.items() if now - o.time_s <= max_age_s},
        )
        h.features = {d: {k: str(v) for k, v in f.items()} for d, f in (features or {}).items()}
        h._pool_run_times()
        h._pool_outcomes()
        h._fit_success_models()
        return h

    def _run_spread(self) -> None:
        """Expected time needs the mean run time, gxadmin reports the median (and the 95th
        percentile). Run times are right-skewed (lognormal-like: the median underestimates the
        mean by 10-40%), which would underweight run-time differences between destinations
        against transfer and wait. The spread of a tool's runs is the spread of its jobs' sizes,
        the same wherever they run: log(p95 / median) / 1.645, pooled over destinations
        (count-weighted), gives mean = median * exp(sigma^2 / 2)."""
        num: dict[str, float] = defaultdict(float)
        den: dict[str, float] = defaultdict(float)
        for (_, tool), r in self.runtimes.items():
            if r.perc_95_run and r.median_run and r.perc_95_run >= r.median_run and r.count > 1:
                sigma = min(math.log(r.perc_95_run / r.median_run) / 1.645, MAX_RUN_SIGMA)
                num[tool] += r.count * sigma
                den[tool] += r.count
        self.run_mean_factor = {t: math.exp((num[t] / den[t]) ** 2 / 2) for t in den}

    def _mean_run(self, tool: str, r: RunStats) -> float:
        return (r.median_run or 0.0) * self.run_mean_factor.get(tool, 1.0)

    def _pool_run_times(self) -> None:
        self._run_spread()
        by_tool: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
        for (dest, tool), r in self.runtimes.items():
            by_tool[tool].append((dest, max(self._mean_run(tool, r), 1.0), r.count))
        # A tool's reference run time: count-weighted geometric mean over destinations.
        for tool, rows in by_tool.items():
            n = sum(c for _, _, c in rows)
            self.tool_reference_run[tool] = (
                math.exp(sum(c * math.log(t) for _, t, c in rows) / n),
                n,
            )
        # A destination's speed: how much slower than the reference its tools run (log-mean),
        # over tools that also ran elsewhere, shrunk towards 1 by `min_runs` pseudo-runs.
        log_ratio: dict[str, float] = defaultdict(float)
        weight: dict[str, float] = defaultdict(float)
        run_sum: dict[str, float] = defaultdict(float)
        for tool, rows in by_tool.items():
            ref = self.tool_reference_run[tool][0]
            for dest, t, c in rows:
                run_sum[dest] += c * t
                if len(rows) > 1:
                    log_ratio[dest] += c * math.log(t / ref)
                    weight[dest] += c
        counts: dict[str, float] = defaultdict(float)
        for (dest, _), r in self.runtimes.items():
            counts[dest] += r.count
        k = self.settings.min_runs
        for dest in counts:
            self.speed[dest] = math.exp(log_ratio[dest] / (weight[dest] + k))
            self.typical_run[dest] = run_sum[dest] / counts[dest]

    def _pool_outcomes(self) -> None:
        s = self.settings
        k = s.prior_strength
        ok_all = sum(o.ok for o in self.outcomes.values())
        n_all = sum(o.ok + o.error for o in self.outcomes.values())
        self.global_success = (ok_all + k * s.default_success) / (n_all + k)
        ok_t: dict[str, float] = defaultdict(float)
        n_t: dict[str, float] = defaultdict(float)
        ok_d: dict[str, float] = defaultdict(float)
        n_d: dict[str, float] = defaultdict(float)
        for (dest, tool), o in self.outcomes.items():
            ok_t[tool] += o.ok
            n_t[tool] += o.ok + o.error
            ok_d[dest] += o.ok
            n_d[dest] += o.ok + o.error
        g = self.global_success
        self.tool_success = {t: (ok_t[t] + k * g) / (n_t[t] + k) for t in n_t}
        self.dest_success = {d: (ok_d[d] + k * g) / (n_d[d] + k) for d in n_d}
        self._dest_counts = {d: (ok_d[d], n_d[d]) for d in n_d}

    def _features_of(self, dest: str) -> dict[str, str]:
        return {**self.features.get(dest, {}), DESTINATION_FEATURE: dest}

    def _dest_offset(self, dest: str, tool: str) -> tuple[float, float | None]:
        """The destination's log-odds shift from its record with the *other* tools (flaky
        hardware, a full disk hit every tool), shrunk to the global rate by `prior_strength`.
        Leaving the tool out keeps its own outcomes from counting twice."""
        ok_d, n_d = self._dest_counts.get(dest, (0.0, 0.0))
        o = self.outcomes.get((dest, tool))
        if o is not None:
            ok_d, n_d = ok_d - o.ok, n_d - o.ok - o.error
        if n_d <= 0:
            return 0.0, None
        k, g = self.settings.prior_strength, self.global_success
        rate = (ok_d + k * g) / (n_d + k)
        return _logit(rate) - _logit(g), rate

    def _fit_success_models(self) -> None:
        """One model per tool: its outcomes at each destination, over the destinations'
        features, offset by each destination's record with other tools, intercept centred on
        the global rate (see broker/success/model.py). Reused while its inputs are unchanged;
        a tool whose fit fails keeps the Beta-binomial estimate and is logged, never fatal."""
        by_tool: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
        for (dest, tool), o in self.outcomes.items():
            if o.ok + o.error > 0:
                by_tool[tool].append((dest, o.ok, o.error))
        prior = round(_logit(self.global_success), 9)
        for tool, rows in by_tool.items():
            rows.sort()
            feats = [self._features_of(d) for d, _, _ in rows]
            offsets = [round(self._dest_offset(d, tool)[0], 9) for d, _, _ in rows]
            key = (
                tool,
                prior,
                tuple(
                    (d, ok, err, tuple(sorted(f.items())), off)
                    for (d, ok, err), f, off in zip(rows, feats, offsets, strict=True)
                ),
            )
            with _SUCCESS_FITS_LOCK:
                model = _SUCCESS_FITS.get(key)
                if model is not None:
                    _SUCCESS_FITS.move_to_end(key)
            if model is None:
                try:
                    model = SuccessModel().fit(
                        feats,
                        [ok for _, ok, _ in rows],
                        [err for _, _, err in rows],
                        offset=offsets,
                        prior_logit=prior,
                    )
                except Exception:  # a numerical surprise must not stop the refresh
                    log.exception("success model for tool %s failed; Beta-binomial used", tool)
                    continue
                with _SUCCESS_FITS_LOCK:
                    _SUCCESS_FITS[key] = model
                    while len(_SUCCESS_FITS) > _SUCCESS_FITS_MAX:
                        _SUCCESS_FITS.popitem(last=False)
            self.success_models[tool] = model

    # --- per-request estimates (dictionary lookups and arithmetic only) ---

    def at(self, tool: str | None, dest: str) -> ToolAt:
        """The tool's run time, success probability and past queue time at a destination."""
        key = (tool, dest)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = ToolAt(
                self._run_time(tool, dest), self._success(tool, dest), self._queue_time(tool, dest)
            )
        return found

    def terms(self, tool: str | None, dests: tuple[str, ...]) -> ToolTerms:
        """`at` for each destination, as lists. Memoised per candidate list: the jobs of a
        tool mostly come with the same candidates, and the list changes only with TPV's
        config (bounded all the same: a new view starts a new History)."""
        key = (tool, dests)
        found = self._lists.get(key)
        if found is None:
            at = [self.at(tool, d) for d in dests]
            found = ToolTerms(
                at,
                [a.run.value for a in at],
                [a.success.value for a in at],
                [math.nan if a.queue_s is None else a.queue_s for a in at],
            )
            if len(self._lists) < _TERMS_MAX:
                self._lists[key] = found
        return found

    def _run_time(self, tool: str | None, dest: str) -> Estimate:
        """Hierarchical: the tool here, shrunk towards the tool elsewhere scaled by this
        destination's speed; then the global default scaled by the speed."""
        speed = self.speed.get(dest, 1.0)
        local = self.runtimes.get((dest, tool)) if tool else None
        ref = self.tool_reference_run.get(tool) if tool else None
        k = self.settings.min_runs
        if ref is not None:
            elsewhere = ref[0] * speed
            if local is not None:
                n = local.count
                here = self._mean_run(tool, local)
                value = (n * here + k * elsewhere) / (n + k)
                return Estimate(
                    value,
                    f"mean {here:.0f} s (median {local.median_run:.0f} s) over {n:.0f} runs "
                    f"here, shrunk towards {elsewhere:.0f} s from all destinations",
                )
            return Estimate(
                elsewhere,
                f"no runs here: {ref[0]:.0f} s elsewhere x speed {speed:.2f} of this destination",
            )
        default = self.settings.default_run_s * speed
        return Estimate(default, f"no history for this tool: default {default:.0f} s")

    def _queue_time(self, tool: str | None, dest: str) -> float | None:
        r = self.runtimes.get((dest, tool)) if tool else None
        if r is None or r.median_queue is None or r.count < self.settings.min_runs:
            return None
        return r.median_queue

    def _success(self, tool: str | None, dest: str) -> Estimate:
        """The tool's success model at this destination's features (see
        `_fit_success_models`); for a tool without outcomes, the prior of the Beta-binomial
        below (global and destination rates)."""
        model = self.success_models.get(tool) if tool else None
        if model is None:
            return self._success_beta(tool, dest)
        s = self.settings
        offset, other_rate = self._dest_offset(dest, tool)
        eta, parts = model.explain(self._features_of(dest), offset)
        p = min(1.0, max(s.min_success, _expit(eta)))
        o = self.outcomes.get((dest, tool))
        here = f"{o.ok:.0f}/{o.ok + o.error:.0f} ok here" if o else "no outcomes here"
        effects = ", ".join(
            f"{c.feature}={c.value} {c.effect:+.2f}" + ("" if c.seen else " (unseen)")
            for c in parts
            if c.feature != DESTINATION_FEATURE and (abs(c.effect) >= 0.05 or not c.seen)
        )
        own = next((c for c in parts if c.feature == DESTINATION_FEATURE), None)
        note = (
            f"{here}; feature model over {model.n_rows} destinations: tool baseline "
            f"{model.base_rate:.2f}"
            + (f", features {effects}" if effects else "")
            + (f", own record {own.effect:+.2f}" if own and own.seen else "")
            + (f", other tools here {other_rate:.2f}" if other_rate is not None else "")
            + " (log-odds)"
        )
        return Estimate(p, note)

    def _success_beta(self, tool: str | None, dest: str) -> Estimate:
        """Beta-binomial posterior; its prior mean combines the tool's and the destination's
        overall rates as independent effects on the log-odds scale."""
        s = self.settings
        g = self.global_success
        rt = self.tool_success.get(tool, g) if tool else g
        rd = self.dest_success.get(dest, g)
        prior = _expit(_logit(rt) + _logit(rd) - _logit(g))
        o = self.outcomes.get((dest, tool)) if tool else None
        ok, n = (o.ok, o.ok + o.error) if o else (0.0, 0.0)
        p = (ok + s.prior_strength * prior) / (n + s.prior_strength)
        p = min(1.0, max(s.min_success, p))
        if n:
            note = (
                f"{ok:.0f}/{n:.0f} ok here, prior {prior:.2f} (tool {rt:.2f}, destination {rd:.2f})"
            )
        else:
            note = f"no outcomes here: prior {prior:.2f} (tool {rt:.2f}, destination {rd:.2f})"
        return Estimate(p, note)
