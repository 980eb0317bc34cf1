"""Run-time model of one workflow task: the Amdahl fit, plus a GP on what it misses.

The Amdahl part (``broker.arbo.amdahl``) gives a log-space mean and its parameter variance.
What it cannot express (per-worker coordination cost, a non-linear load or size effect) is
left in the residuals; a Gaussian process over (log s, log x/x0, load) models them once there
are enough runs. scikit-learn's GP is used directly rather than the reprioritization service's
(``broker/reprioritize/gp.py``): see docs/arbo.md ("Why not the reprioritization GP") for the
measured comparison.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

from broker.arbo.amdahl import SIGMA0, SIGMA0_WEIGHT, AmdahlFit, Run, fit_amdahl, noise_dof, ratios

# log2(s) is divided by this so s in 1..64 spans the GP's unit interval.
S_SCALE = 6.0


@dataclass
class RunTimeDistribution:
    """Log-space predictive distribution of the run time at each candidate ``s``."""

    s: np.ndarray
    mu: np.ndarray
    var: np.ndarray
    epistemic_var: np.ndarray
    dof: float = math.inf

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(self.var)

    def mean_seconds(self) -> np.ndarray:
        """Expected seconds of a lognormal: what an average over many runs would cost."""
        return np.exp(self.mu + self.var / 2)

    def quantile(self, q: float) -> np.ndarray:
        """Student-t quantile: the noise scale is itself estimated from ``n`` runs."""
        return np.exp(self.mu + float(student_t.ppf(q, self.dof)) * self.sd)

    def prob_below(self, seconds: float | np.ndarray) -> np.ndarray:
        return student_t.cdf((np.log(seconds) - self.mu) / self.sd, self.dof)


def _log2s(s: np.ndarray) -> np.ndarray:
    return np.log2(np.asarray(s, dtype=float)) / S_SCALE


@dataclass
class TaskModel:
    """Amdahl fit + optional residual GP for one task; predicts at candidate ``s`` values."""

    amdahl: AmdahlFit
    gp: GaussianProcessRegressor | None
    n: int
    distinct_s: list[int]
    gp_calibration: float = 1.0

    def ratio(self, input_size: float | None) -> float:
        return 1.0 if input_size is None else float(input_size) / self.amdahl.x0

    def predict(
        self, s: np.ndarray, input_size: float | None = None, load: float | None = None
    ) -> RunTimeDistribution:
        s = np.asarray(s, dtype=float)
        r = self.ratio(input_size)
        load = self.amdahl.load0 if load is None else load
        mu = self.amdahl.log_mean(s, r, load)
        param_var = self.amdahl.log_mean_var(s, r, load)
        dof = noise_dof(self.n)
        if self.gp is None:
            return RunTimeDistribution(s, mu, param_var + self.amdahl.sigma**2, param_var, dof)
        feats = np.column_stack([_log2s(s), np.full_like(s, math.log(r)), np.full_like(s, load)])
        gp_mu, gp_sd = self.gp.predict(feats, return_std=True)
        # Scaled by the GP's own leave-one-out calibration: a maximum-likelihood GP on a few dozen
        # runs explains part of the noise as signal and would promise too narrow intervals. For
        # the same reason its white level is shrunk towards the prior noise, with the same
        # pseudo-runs as the Amdahl fit's sigma.
        white = _white_level(self.gp) * self.gp_calibration
        gp_epi = np.maximum(gp_sd**2 * self.gp_calibration - white, 0.0)
        extra = max(self.n - 4, 0)
        noise = (SIGMA0_WEIGHT * SIGMA0**2 + extra * white) / (SIGMA0_WEIGHT + extra)
        epi = param_var + gp_epi
        return RunTimeDistribution(s, mu + gp_mu, epi + noise, epi, dof)

    def describe(self) -> dict:
        a = self.amdahl
        out = {
            "c_seconds": a.c,
            "t1_seconds": a.t1,
            "p": a.p,
            "k": a.k,
            "o_seconds_per_worker": a.o,
            "load_coef": a.b,
            "x0": a.x0,
            "sigma_log": a.sigma,
            "p_sd": float(math.sqrt(max(a.cov[2, 2], 0.0))),
            "runs_fitted": self.n,
            "distinct_s": self.distinct_s,
            "gp": None,
        }
        if self.gp is not None:
            out["gp"] = {
                "kernel": str(self.gp.kernel_),
                "noise_sd_log": _white_level(self.gp) ** 0.5,
            }
        return out


def _white_level(gp: GaussianProcessRegressor) -> float:
    kernel = gp.kernel_
    return float(kernel.k2.noise_level) if isinstance(kernel.k2, WhiteKernel) else 0.0


def fit(runs: list[Run], gp_min_runs: int = 8) -> TaskModel | None:
    """Fit a task's model from its successful runs (oldest first); None without any run."""
    runs = [r for r in runs if r.seconds > 0 and r.s >= 1]
    if not runs:
        return None
    amdahl = fit_amdahl(runs)
    distinct = sorted({r.s for r in runs})
    gp, calibration = None, 1.0
    if len(runs) >= gp_min_runs:
        gp, calibration = _fit_gp(runs, amdahl)
    return TaskModel(amdahl, gp, len(runs), distinct, calibration)


def _fit_gp(runs: list[Run], amdahl: AmdahlFit) -> tuple[GaussianProcessRegressor, float]:
    """Residual GP and its variance calibration factor (>= 1, from leave-one-out residuals)."""
    s = np.array([r.s for r in runs], dtype=float)
    ratio = ratios(runs, amdahl.x0)
    # a run without a load reading is taken at the window's mean load
    load = np.array([amdahl.load0 if r.load is None else r.load for r in runs])
    resid = np.log([r.seconds for r in runs]) - amdahl.log_mean(s, ratio, load)
    # Outliers (beyond 4 robust sd) would bend the GP; the Amdahl fit already ignored them.
    keep = np.abs(resid - np.median(resid)) <= 4 * max(amdahl.sigma, 0.02)
    x = np.column_stack([_log2s(s), np.log(ratio), load])[keep]
    kernel = ConstantKernel(0.05**2, (1e-5, 1.0)) * RBF(
        length_scale=[1.0, 1.0, 1.0], length_scale_bounds=(0.1, 20.0)
    ) + WhiteKernel(amdahl.sigma**2, (0.02**2, 0.5))
    gp = GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(x, resid[keep])
    return gp, _loo_calibration(gp, x, resid[keep])


def _loo_calibration(gp: GaussianProcessRegressor, x: np.ndarray, y: np.ndarray) -> float:
    """Mean squared standardised leave-one-out residual (closed form for a GP), at least 1."""
    try:
        k_inv = np.linalg.inv(gp.kernel_(x))
    except np.linalg.LinAlgError:
        return 1.0
    diag = np.diag(k_inv)
    z2 = (k_inv @ y) ** 2 / diag  # (residual / sd)^2 with residual = a/d and var = 1/d
    return float(max(1.0, np.mean(z2)))
