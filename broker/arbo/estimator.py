"""Run-time model of one workflow task: Amdahl's law fitted jointly, plus a GP on what it misses.

``T(s, x, L) = (c + T1 * (x/x0)^k * ((1 - p) + p / s)) * exp(b (L - L0))`` is fitted to the
task's recent runs in log space, because run-time noise is multiplicative (a run twice as slow
is as likely on a long task as on a short one), with a soft-L1 loss so one stuck node does not
drag the fit. The load term (L the cluster's busy fraction, L0 the window's mean) is the
first-order effect of a busy cluster; without it, load drift looks like noise for the first
runs and widens every interval. Weak priors on ``p``, ``k``, ``c`` and ``b`` keep the fit
defined when only one or two ``s`` values have been seen; they stop mattering after a handful of
runs. The parameter covariance (Laplace approximation) is propagated to every prediction, so a
task with few runs gets honestly wide intervals.

What this cannot express (per-worker coordination cost, a non-linear load or size effect) is
left in the residuals; a Gaussian process over (log s, log x/x0, load) models them once there
are enough runs. scikit-learn's GP is used directly rather than ``broker/gp.py``: see
docs/arbo.md ("Why not broker/gp.py") for the measured comparison.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import t as student_t
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

# Nominal log-space noise (about 15 %): the unit of the residuals and the prior on the noise.
SIGMA0 = 0.15
# Pseudo-runs behind SIGMA0: with two runs the noise estimate is mostly prior, with 30 mostly data.
SIGMA0_WEIGHT = 4.0
# Priors: most tasks people bother to parallelise are mostly parallel; data sizes scale ~linearly;
# start-up overhead is a small fraction of the typical run. Each is (mean, sd).
PRIOR_P = (0.8, 0.35)
PRIOR_K = (1.0, 0.5)
PRIOR_C = (0.0, 0.5)
# A busier cluster slows a run down: log T grows by ``b`` per unit of load (0..1), b ~ 0.3 +- 0.5.
PRIOR_B = (0.3, 0.5)
# log2(s) is divided by this so s in 1..64 spans the GP's unit interval.
S_SCALE = 6.0


@dataclass(frozen=True)
class Run:
    """One observed run of a task (successful runs only are fitted)."""

    s: int
    seconds: float
    input_size: float | None = None
    load: float | None = None


@dataclass
class Prediction:
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


@dataclass
class AmdahlFit:
    """Fitted Amdahl parameters in seconds, with the covariance of the scaled parameters."""

    c: float
    t1: float
    p: float
    k: float
    x0: float
    sigma: float
    n: int
    scale: float
    cov: np.ndarray = field(repr=False)
    b: float = 0.0
    load0: float = 0.0

    def _theta(self) -> np.ndarray:
        return np.array([self.c / self.scale, self.t1 / self.scale, self.p, self.k, self.b])

    def log_mean(
        self, s: np.ndarray, ratio: np.ndarray | float, load: np.ndarray | float | None = None
    ) -> np.ndarray:
        """log T at (s, x/x0, load); ``c`` and ``T1`` are at the window's mean load."""
        dl = 0.0 if load is None else np.asarray(load, dtype=float) - self.load0
        return np.log(_model(self._theta(), s, ratio) * self.scale) + self.b * dl

    def log_mean_var(self, s: np.ndarray, ratio: float, load: float | None = None) -> np.ndarray:
        """Delta-method variance of log T from the parameter covariance."""
        u, v, p, k, _b = self._theta()
        s = np.asarray(s, dtype=float)
        rk = ratio**k
        a = v * rk
        f = (1 - p) + p / s
        m = u + a * f
        dl = 0.0 if load is None else float(load) - self.load0
        grad = np.stack(
            [
                1 / m,
                rk * f / m,
                a * (1 / s - 1) / m,
                a * f * math.log(ratio) / m,
                np.full_like(s, dl),
            ],
            axis=1,
        )
        return np.einsum("ij,jk,ik->i", grad, self.cov, grad)


def noise_dof(n: int) -> float:
    """Degrees of freedom of the noise estimate: the prior's pseudo-runs + runs beyond four."""
    return SIGMA0_WEIGHT + max(n - 4, 0)


def _model(theta: np.ndarray, s: np.ndarray, ratio: np.ndarray | float) -> np.ndarray:
    u, v, p, k = theta[:4]
    return u + v * np.power(ratio, k) * ((1 - p) + p / s)


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
    ) -> Prediction:
        s = np.asarray(s, dtype=float)
        r = self.ratio(input_size)
        load = self.amdahl.load0 if load is None else load
        mu = self.amdahl.log_mean(s, r, load)
        param_var = self.amdahl.log_mean_var(s, r, load)
        dof = noise_dof(self.n)
        if self.gp is None:
            return Prediction(s, mu, param_var + self.amdahl.sigma**2, param_var, dof)
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
        return Prediction(s, mu + gp_mu, epi + noise, epi, dof)

    def describe(self) -> dict:
        a = self.amdahl
        out = {
            "c_seconds": a.c,
            "t1_seconds": a.t1,
            "p": a.p,
            "k": a.k,
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


def _ratios(runs: list[Run], x0: float) -> np.ndarray:
    """Each run's input size relative to the reference size (1 when unknown)."""
    return np.array([1.0 if r.input_size is None else r.input_size / x0 for r in runs])


def fit_amdahl(runs: list[Run]) -> AmdahlFit:
    """Robust joint fit of Amdahl's law with start-up overhead and input-size scaling."""
    s = np.array([r.s for r in runs], dtype=float)
    t = np.array([r.seconds for r in runs], dtype=float)
    sizes = [r.input_size for r in runs if r.input_size is not None]
    x0 = float(np.exp(np.median(np.log(sizes)))) if sizes else 1.0
    ratio = _ratios(runs, x0)
    loads = [r.load for r in runs if r.load is not None]
    load0 = float(np.mean(loads)) if loads else 0.0
    dl = np.array([0.0 if r.load is None else r.load - load0 for r in runs])
    loads_vary = len(loads) >= 2 and float(np.ptp(loads)) > 0.02
    prior_b = PRIOR_B if loads_vary else (PRIOR_B[0], 1e-3)
    scale = float(np.median(t))
    logt = np.log(t / scale)
    sizes_vary = len(sizes) >= 2 and float(np.ptp(np.log(sizes))) > 0.05
    prior_k = PRIOR_K if sizes_vary else (PRIOR_K[0], 1e-3)

    def residuals(theta: np.ndarray) -> np.ndarray:
        data = (logt - np.log(_model(theta, s, ratio)) - theta[4] * dl) / SIGMA0
        prior = [
            (theta[0] - PRIOR_C[0]) / PRIOR_C[1],
            (theta[2] - PRIOR_P[0]) / PRIOR_P[1],
            (theta[3] - prior_k[0]) / prior_k[1],
            (theta[4] - prior_b[0]) / prior_b[1],
        ]
        return np.concatenate([data, prior])

    lower = [0.0, 1e-6, 0.0, 0.0, -1.0]
    upper = [10.0, 1e3, 1.0, 3.0, 3.0]
    best = None
    for p_start in (0.5, 0.9, 0.99):
        start = np.array([0.05, 1.0, p_start, prior_k[0], prior_b[0]])
        res = least_squares(
            residuals, start, bounds=(lower, upper), loss="soft_l1", f_scale=2.0, x_scale="jac"
        )
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    theta = best.x
    n = len(runs)
    r_data = logt - np.log(_model(theta, s, ratio)) - theta[4] * dl
    # Runs beyond the four parameters that matter (T1, c, p and k or b) inform the noise; until
    # then it is the prior's. Its spread is robust (MAD), scaled for the parameters' share.
    extra = max(n - 4, 0)
    mad = 1.4826 * float(np.median(np.abs(r_data - np.median(r_data)))) if extra else 0.0
    mad *= math.sqrt(n / extra) if extra else 0.0
    sigma = math.sqrt((SIGMA0_WEIGHT * SIGMA0**2 + extra * mad**2) / (SIGMA0_WEIGHT + extra))
    jac = best.jac
    jd, jp = jac[:n] * (SIGMA0 / sigma), jac[n:]
    fisher = jd.T @ jd + jp.T @ jp
    # Parameters at a bound or unidentified: pinv keeps the others' variance finite.
    cov = np.linalg.pinv(fisher + 1e-9 * np.eye(5))
    return AmdahlFit(
        c=theta[0] * scale,
        t1=theta[1] * scale,
        p=float(theta[2]),
        k=float(theta[3]),
        x0=x0,
        sigma=sigma,
        n=n,
        scale=scale,
        cov=cov,
        b=float(theta[4]),
        load0=load0,
    )


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
    ratio = _ratios(runs, amdahl.x0)
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
