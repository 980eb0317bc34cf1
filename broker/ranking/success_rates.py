"""Success rates from the job-outcome history, pooled once per metrics refresh.

Beta-binomial rates by tool and by destination, and per tool a success model over the
destinations' features (broker/success/model.py), offset by each destination's record with the
other tools. A model is refitted only when its inputs changed (`_FITS`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

from broker.config import RankingSettings
from broker.metrics.series import Outcomes
from broker.ranking.run_times import Estimate
from broker.success.model import SuccessModel

log = logging.getLogger(__name__)

# The implicit feature naming a destination itself: its own record for a tool, shrunk towards
# what its other features predict (an admin feature of this name is overridden).
DESTINATION_FEATURE = "destination"
# Fitted per-tool success models by their exact inputs: refreshes every 30 s see the same daily
# outcomes, so most refreshes refit nothing. Bounded; only the refresh thread writes in practice.
_FITS: OrderedDict[tuple, SuccessModel] = OrderedDict()
_FITS_MAX = 4096
_FITS_LOCK = threading.Lock()


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class SuccessRates:
    settings: RankingSettings
    outcomes: dict[tuple[str, str], Outcomes]
    # Destination id -> configured categorical features (os, cpu_arch, container, cvmfs, ...).
    features: dict[str, dict[str, str]] = field(default_factory=dict)
    global_success: float = 0.95
    tool_success: dict[str, float] = field(default_factory=dict)
    dest_success: dict[str, float] = field(default_factory=dict)
    # Tool -> its success model over destination features (tools with outcomes only).
    success_models: dict[str, SuccessModel] = field(default_factory=dict)
    _dest_counts: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._pool_outcomes()
        self._fit_success_models()

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
            with _FITS_LOCK:
                model = _FITS.get(key)
                if model is not None:
                    _FITS.move_to_end(key)
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
                with _FITS_LOCK:
                    _FITS[key] = model
                    while len(_FITS) > _FITS_MAX:
                        _FITS.popitem(last=False)
            self.success_models[tool] = model

    def estimate(self, tool: str | None, dest: str) -> Estimate:
        """The tool's success model at this destination's features (see
        `_fit_success_models`); for a tool without outcomes, the prior of the Beta-binomial
        below (global and destination rates)."""
        model = self.success_models.get(tool) if tool else None
        if tool is None or model is None:
            return self._beta(tool, dest)
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

    def _beta(self, tool: str | None, dest: str) -> Estimate:
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
