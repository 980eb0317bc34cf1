"""Amdahl's law with start-up and per-worker overhead, input-size and load terms, fitted to one
task's runs.

``T(s, x, L) = (c + T1 * (x/x0)^k * ((1 - p) + p / s) + o s) * exp(b (L - L0))`` is fitted to the
task's recent runs in log space, because run-time noise is multiplicative (a run twice as slow
is as likely on a long task as on a short one), with a soft-L1 loss so one stuck node does not
drag the fit. The per-worker term ``o s`` (coordination, start-up of each worker, as in Ernest's
``d s``) is what makes "fastest" an interior optimum (``s* = sqrt(T1 p / o)``) instead of "as
many workers as allowed": without it the model only learns that the largest ``s`` is slower than
predicted once it has run there often, and it never looks back. The load term (L the cluster's
busy fraction, L0 the window's mean) is the first-order effect of a busy cluster; without it,
load drift looks like noise for the first runs and widens every interval. Weak priors on ``p``,
``k``, ``c``, ``o`` and ``b`` keep the fit defined when only one or two ``s`` values have been
seen; they stop mattering after a handful of runs. The parameter covariance (Laplace
approximation) is what ``broker.arbo.estimator`` propagates to every prediction, so a task with
few runs gets honestly wide intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

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
# Per-worker overhead as a fraction of the typical run per worker: 0 +- 0.01 (64 workers adding
# up to about half a typical run is plausible, more is not).
PRIOR_O = (0.0, 0.01)
N_PARAMS = 6


@dataclass(frozen=True)
class Run:
    """One observed run of a task (successful runs only are fitted)."""

    s: int
    seconds: float
    input_size: float | None = None
    load: float | None = None


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
    o: float = 0.0

    def _theta(self) -> np.ndarray:
        return np.array(
            [self.c / self.scale, self.t1 / self.scale, self.p, self.k, self.b, self.o / self.scale]
        )

    def log_mean(
        self, s: np.ndarray, ratio: np.ndarray | float, load: np.ndarray | float | None = None
    ) -> np.ndarray:
        """log T at (s, x/x0, load); ``c`` and ``T1`` are at the window's mean load."""
        dl = 0.0 if load is None else np.asarray(load, dtype=float) - self.load0
        return np.log(_model(self._theta(), s, ratio) * self.scale) + self.b * dl

    def log_mean_var(self, s: np.ndarray, ratio: float, load: float | None = None) -> np.ndarray:
        """Delta-method variance of log T from the parameter covariance."""
        u, v, p, k, _b, w = self._theta()
        s = np.asarray(s, dtype=float)
        rk = ratio**k
        a = v * rk
        f = (1 - p) + p / s
        m = u + a * f + w * s
        dl = 0.0 if load is None else float(load) - self.load0
        grad = np.stack(
            [
                1 / m,
                rk * f / m,
                a * (1 / s - 1) / m,
                a * f * math.log(ratio) / m,
                np.full_like(s, dl),
                s / m,
            ],
            axis=1,
        )
        return np.einsum("ij,jk,ik->i", grad, self.cov, grad)


def noise_dof(n: int) -> float:
    """Degrees of freedom of the noise estimate: the prior's pseudo-runs + runs beyond four."""
    return SIGMA0_WEIGHT + max(n - 4, 0)


def _model(theta: np.ndarray, s: np.ndarray, ratio: np.ndarray | float) -> np.ndarray:
    u, v, p, k = theta[:4]
    return u + v * np.power(ratio, k) * ((1 - p) + p / s) + theta[5] * s


def ratios(runs: list[Run], x0: float) -> np.ndarray:
    """Each run's input size relative to the reference size (1 when unknown)."""
    return np.array([1.0 if r.input_size is None else r.input_size / x0 for r in runs])


def fit_amdahl(runs: list[Run]) -> AmdahlFit:
    """Robust joint fit of Amdahl's law with start-up overhead and input-size scaling."""
    s = np.array([r.s for r in runs], dtype=float)
    t = np.array([r.seconds for r in runs], dtype=float)
    sizes = [r.input_size for r in runs if r.input_size is not None]
    x0 = float(np.exp(np.median(np.log(sizes)))) if sizes else 1.0
    ratio = ratios(runs, x0)
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
            (theta[5] - PRIOR_O[0]) / PRIOR_O[1],
        ]
        return np.concatenate([data, prior])

    lower = [0.0, 1e-6, 0.0, 0.0, -1.0, 0.0]
    upper = [10.0, 1e3, 1.0, 3.0, 3.0, 1.0]
    best = None
    for p_start in (0.5, 0.9, 0.99):
        start = np.array([0.05, 1.0, p_start, prior_k[0], prior_b[0], 1e-4])
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
    cov = np.linalg.pinv(fisher + 1e-9 * np.eye(N_PARAMS))
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
        o=float(theta[5]) * scale,
    )
