"""P(success | categorical features): a hierarchical Bayesian logistic model, one per tool.

    logit p(x) = offset + b + sum over features f of sum over levels l of value x_f:  w[f, l]

Why this shape:

- Outcomes are few and lumpy (a destination may have 2 runs of a tool, another 2000), so every
  effect has a Gaussian prior centred on "no effect" and the data must earn any departure:
  with little data the estimate stays at the level above it (the tool's rate, the feature
  value's rate), with a lot of data it follows the data. The intercept `b` has a prior centred
  on the population rate (`prior_logit`), so an all-success or all-failure tool gets a high or
  low probability, never exactly 1 or 0, and a tool with no data gets the population rate.
- Version-like values (`3.16.4`) are a hierarchy: the effect of `3.16.4` is the sum of the
  effects of `3`, `3.16` and `3.16.4`, each shrunk. A value never seen in training (`3.16.9`)
  still gets what its family (`3.16`) showed, instead of nothing; a wholly unknown value adds
  nothing and the prediction falls back to the levels above it.
- The prior scale of the effects is chosen per fit by empirical Bayes (the Laplace
  approximation of the marginal likelihood over a small grid), so a tool whose outcomes vary a
  lot with the features gets larger effects and a tool that fails at random gets none, with no
  tuning knob per tool.
- Point predictions are the posterior mode (MAP). They were better calibrated on the tuning
  packages than the Laplace-moderated predictive (docs/success-model.md).

Fitting is Newton's method on the exact gradient and Hessian (dense: a few hundred columns at
most), with step halving, under a one-thread BLAS limit: it runs in the broker's background
refresh thread and must not take every core from the request path (and OpenBLAS threading on
problems this small is far slower than one thread).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.special import expit, log_expit
from threadpoolctl import threadpool_limits

# Prior standard deviations (logit scale) tried for the feature effects; the evidence picks one.
DEFAULT_SCALES = (0.25, 0.5, 1.0, 2.0)
# Prior standard deviation of the intercept around the population rate: wide, because tools and
# packages differ a lot in their overall success rate.
INTERCEPT_SD = 2.0
# Levels of a version-like value used as parents: `1.12.1` -> `1`, `1.12`, `1.12.1`.
MAX_DEPTH = 3
_VERSION = re.compile(r"^\d+(\.[0-9A-Za-z]+)+$")


def value_levels(value: str, max_depth: int = MAX_DEPTH) -> list[str]:
    """The value and its version parents (`3.16.4` -> `3`, `3.16`, `3.16.4`); other values are
    atomic: splitting ids like `pulsar_de_freiburg` would invent groups nobody configured."""
    if not _VERSION.match(value):
        return [value]
    parts = value.split(".")
    return [".".join(parts[:i]) for i in range(1, min(len(parts), max_depth))] + [value]


def logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class Contribution:
    feature: str
    value: str
    effect: float  # logit-scale effect of the value (sum over its seen levels)
    seen: bool  # False: the exact value was never seen in training


@dataclass
class SuccessModel:
    """Per-tool (per-package) success probability from categorical features; see module doc."""

    scales: Sequence[float] = DEFAULT_SCALES
    intercept_sd: float = INTERCEPT_SD
    max_depth: int = MAX_DEPTH
    prior_logit: float = 0.0
    columns: dict[tuple[str, str], int] = field(default_factory=dict)
    weights: np.ndarray = field(default_factory=lambda: np.zeros(1))
    scale: float | None = None
    n_rows: int = 0
    n_outcomes: float = 0.0

    # --- encoding ---

    def _keys(self, row: Mapping[str, str]) -> list[tuple[str, str]]:
        return [
            (f, level)
            for f, v in row.items()
            if v is not None
            for level in value_levels(str(v), self.max_depth)
        ]

    # --- fitting ---

    def fit(
        self,
        rows: Sequence[Mapping[str, str]],
        ok: Sequence[float],
        fail: Sequence[float],
        offset: Sequence[float] | None = None,
        prior_logit: float = 0.0,
    ) -> SuccessModel:
        """Fit on binomial counts per row (one build: 1/0; one destination: its ok/error).

        `offset` is a known logit shift per row (a destination's rate for other tools);
        `prior_logit` centres the intercept (the population rate). No rows: the prior."""
        self.prior_logit = prior_logit
        pos = np.asarray(ok, dtype=float)
        neg = np.asarray(fail, dtype=float)
        keep = (pos + neg) > 0
        rows = [r for r, k in zip(rows, keep, strict=True) if k]
        pos, neg = pos[keep], neg[keep]
        off = np.zeros(len(rows)) if offset is None else np.asarray(offset, dtype=float)[keep]
        self.n_rows, self.n_outcomes = len(rows), float(pos.sum() + neg.sum())
        self.columns = {}
        for r in rows:
            for k in self._keys(r):
                self.columns.setdefault(k, len(self.columns) + 1)
        p = len(self.columns) + 1
        mean = np.zeros(p)
        mean[0] = prior_logit
        if not rows:
            self.weights, self.scale = mean, None
            return self
        x = np.zeros((len(rows), p))
        x[:, 0] = 1.0
        for i, r in enumerate(rows):
            for k in self._keys(r):
                x[i, self.columns[k]] = 1.0
        best: tuple[float, np.ndarray, float] | None = None
        w = mean.copy()
        with threadpool_limits(1):
            for s in self.scales:
                prec = np.full(p, 1.0 / s**2)
                prec[0] = 1.0 / self.intercept_sd**2
                try:
                    w, evidence = _map_fit(x, pos, neg, off, mean, prec, w)
                except LinAlgError:  # cannot happen with a positive prior; never crash on it
                    continue
                if best is None or evidence > best[0]:
                    best = (evidence, w.copy(), s)
        if best is None:
            self.weights, self.scale = mean, None
        else:
            _, self.weights, self.scale = best
        return self

    # --- prediction ---

    def explain(self, row: Mapping[str, str], offset: float = 0.0) -> tuple[float, list]:
        """The logit and each feature value's contribution (unseen levels contribute 0)."""
        eta = offset + float(self.weights[0])
        parts = []
        for f, v in row.items():
            if v is None:
                continue
            effect, seen = 0.0, False
            levels = value_levels(str(v), self.max_depth)
            for level in levels:
                j = self.columns.get((f, level))
                if j is not None:
                    effect += float(self.weights[j])
                    seen = seen or level == levels[-1]
            eta += effect
            parts.append(Contribution(f, str(v), effect, seen))
        return eta, parts

    def predict_one(self, row: Mapping[str, str], offset: float = 0.0) -> float:
        return float(expit(self.explain(row, offset)[0]))

    def predict_proba(
        self, rows: Sequence[Mapping[str, str]], offsets: Sequence[float] | None = None
    ) -> np.ndarray:
        offsets = offsets if offsets is not None else [0.0] * len(rows)
        return np.array([self.predict_one(r, o) for r, o in zip(rows, offsets, strict=True)])

    @property
    def base_rate(self) -> float:
        """The tool's rate where no feature says otherwise (the intercept)."""
        return float(expit(self.weights[0]))


def _map_fit(
    x: np.ndarray,
    pos: np.ndarray,
    neg: np.ndarray,
    off: np.ndarray,
    mean: np.ndarray,
    prec: np.ndarray,
    start: np.ndarray,
    max_iter: int = 100,
) -> tuple[np.ndarray, float]:
    """Posterior mode by damped Newton; returns it and the Laplace log evidence."""
    n_tot = pos + neg

    def objective(w: np.ndarray) -> float:
        eta = off + x @ w
        ll = np.sum(pos * log_expit(eta) + neg * log_expit(-eta))
        return float(-ll + 0.5 * np.sum(prec * (w - mean) ** 2))

    w = start.copy()
    f = objective(w)
    for _ in range(max_iter):
        s = expit(off + x @ w)
        grad = x.T @ (n_tot * s - pos) + prec * (w - mean)
        hess = (x.T * (n_tot * s * (1 - s))) @ x + np.diag(prec)
        chol = cho_factor(hess)
        step = cho_solve(chol, grad)
        t = 1.0
        while True:
            w_new = w - t * step
            f_new = objective(w_new)
            if f_new <= f + 1e-12 or t < 1e-6:
                break
            t *= 0.5
        converged = abs(f - f_new) < 1e-10 * (1 + abs(f)) or np.max(np.abs(t * step)) < 1e-8
        w, f = w_new, f_new
        if converged:
            break
    s = expit(off + x @ w)
    hess = (x.T * (n_tot * s * (1 - s))) @ x + np.diag(prec)
    chol = cho_factor(hess)
    log_det = 2.0 * float(np.sum(np.log(np.diag(chol[0]))))
    evidence = -f + 0.5 * float(np.sum(np.log(prec))) - 0.5 * log_det
    return w, evidence
