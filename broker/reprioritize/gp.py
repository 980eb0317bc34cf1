"""Gaussian-process surrogate of the reprioritization service (``broker.reprioritize.service``).

Only reprioritization uses it. ARBO's residual GP (``broker.arbo.estimator``) calls
scikit-learn directly, because it needs other hyperparameter bounds and the fitted kernel matrix
for its leave-one-out calibration: docs/arbo.md ("Why not the reprioritization GP") has the
measured comparison. The API is small:

- :class:`GaussianProcess`: ``fit(X, y, domain=None)`` then ``predict(X) -> Posterior``.
- :class:`~broker.reprioritize.posterior.Posterior` (``mean`` and ``std`` arrays in the units
  of ``y``) and :func:`~broker.reprioritize.posterior.expected_improvement` live in
  ``broker.reprioritize.posterior``: what a prediction is and what it is worth does not depend
  on how the surrogate was fitted.
- The kernel, its hyperparameter priors and the BIC choice of shared or per-input length scales
  are ``broker.reprioritize.kernels``; this module is the regression around them (scaling,
  trend, subsampling, conditioning).

Why these choices:

- Inputs are min-max scaled to the unit cube over the training points *and* an optional
  ``domain`` (the candidates you will predict at), so one length-scale prior fits every problem
  whatever its units, and predictions at the candidates are never extrapolations in scaled space.
- Outputs are standardised (``normalize_y``), so the signal-variance and noise priors mean the
  same thing for run times in seconds and for objective values near 20.
- The kernel is ``Constant * Matern(nu=2.5, one length scale per input) + White``: Matern 5/2 is
  the usual Bayesian-optimisation default (smooth but not infinitely so, unlike RBF), per-input
  length scales let irrelevant inputs switch themselves off, and the white-noise term absorbs
  duplicate points with different results and structure finer than the data can resolve (an
  interpolating GP on such data chases noise and ranks badly).
- The prior mean is a quadratic trend on [x, x^2] (no cross terms) fitted by ridge regression
  whose penalty is chosen by leave-one-out cross-validation (``RidgeCV``); the GP models what the
  trend leaves. Many objective surfaces have a global bowl (a basin of attraction), and a
  zero-mean GP with a few dozen points in 4-D sees only its local bumps; where there is no bowl
  the cross-validated penalty shrinks the trend towards a constant and the GP does the work
  (``trend="constant"`` switches it off). Measured in ``benchmarks/reprioritize.py``.
- All hyperparameters are fitted by maximising the log marginal likelihood (scikit-learn's
  L-BFGS-B with restarts). Fitting costs O(n^3) per likelihood evaluation, so the hyperparameters
  are fitted on at most ``max_fit_points`` points (the best results plus a seeded random sample
  of the rest); the posterior is then conditioned on up to ``max_points`` points with those
  hyperparameters fixed: one Cholesky factorisation. This keeps a 700-point fit well under a
  second with no measurable loss of ranking quality (see ``benchmarks/reprioritize.py``).
- With fewer than three distinct points, or constant results, the likelihood cannot identify
  the hyperparameters: the prior values are kept (``optimized`` is False) instead of letting the
  optimiser run to a bound.
- Linear algebra runs single-threaded (see :func:`_single_threaded_blas`).
- Everything is seeded, so the same input always gives the same answer.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_limits

from broker.reprioritize.kernels import KernelName, prior_kernel, tune
from broker.reprioritize.posterior import Posterior

__all__ = ["GaussianProcess"]

TrendName = Literal["quadratic", "constant"]
# Penalties RidgeCV chooses among for the quadratic trend (features in the unit cube).
_TREND_ALPHAS = np.logspace(-4, 3, 15)

_BLAS_LOCK = threading.Lock()


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run the enclosed linear algebra with one BLAS thread.

    The matrices here have at most a few thousand rows: BLAS threads buy nothing and, on a busy
    host, oversubscription made a 700-point fit 5x slower (measured). The thread limit is
    process-wide, so fits are serialised by a lock; without it two overlapping requests could
    restore the limits in the wrong order.
    """
    with _BLAS_LOCK, threadpool_limits(limits=1, user_api="blas"):
        yield


def _as_2d(X: np.ndarray | list, name: str) -> np.ndarray:
    arr = np.asarray(X, dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D array of shape (n_points, n_inputs)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


class GaussianProcess:
    """A GP regressor with scaled inputs, standardised outputs and fitted hyperparameters.

    Args:
        kernel: ``"matern52"`` (default) or ``"rbf"`` for the stationary part.
        ard: one length scale per input (True), one shared length scale (False), or
            ``"auto"``: whichever the data supports (BIC); the choice is in ``ard_``.
        noise: add a fitted white-noise term. Keep it on for real measurements.
        n_restarts: extra optimiser restarts from random hyperparameters (more robust, slower).
        max_fit_points: at most this many points are used to fit the hyperparameters.
        max_points: at most this many points condition the posterior.
        random_state: seed for restarts and subsampling.
        trend: ``"quadratic"`` (default) prior mean by cross-validated ridge on [x, x^2], or
            ``"constant"`` (the mean of y, as a plain GP).
    """

    def __init__(
        self,
        *,
        kernel: KernelName = "matern52",
        ard: bool | Literal["auto"] = "auto",
        noise: bool = True,
        n_restarts: int = 0,
        max_fit_points: int = 128,
        max_points: int = 2000,
        random_state: int = 0,
        trend: TrendName = "quadratic",
    ) -> None:
        if kernel not in ("matern52", "rbf"):
            raise ValueError(f"unknown kernel {kernel!r}")
        if trend not in ("quadratic", "constant"):
            raise ValueError(f"unknown trend {trend!r}")
        self.trend = trend
        self._trend: RidgeCV | None = None
        if max_fit_points < 2 or max_points < max_fit_points:
            raise ValueError("need 2 <= max_fit_points <= max_points")
        self.kernel_name = kernel
        self.ard = ard
        self.noise = noise
        self.n_restarts = n_restarts
        self.max_fit_points = max_fit_points
        self.max_points = max_points
        self.random_state = random_state
        self._scaler: MinMaxScaler | None = None
        self._gpr: GaussianProcessRegressor | None = None
        self.optimized: bool = False
        self.n_train: int = 0
        self._y_scale = 1.0
        self.ard_: bool = False

    # -- construction -----------------------------------------------------------------------
    def _subsample(self, y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        """Indices of at most ``size`` points: the best tenth by y (low and high) plus random.

        Keeping both extremes matters because callers minimise or maximise; the random rest
        keeps the global shape of the function.
        """
        n = len(y)
        if n <= size:
            return np.arange(n)
        k = max(1, size // 20)
        order = np.argsort(y, kind="stable")
        keep = np.unique(np.concatenate([order[:k], order[-k:]]))
        rest = np.setdiff1d(np.arange(n), keep)
        extra = rng.choice(rest, size=size - len(keep), replace=False)
        return np.sort(np.concatenate([keep, extra]))

    # -- public API -------------------------------------------------------------------------
    def fit(
        self, X: np.ndarray | list, y: np.ndarray | list, *, domain: np.ndarray | list | None = None
    ) -> GaussianProcess:
        """Fit scaling, hyperparameters and posterior.

        Args:
            X: training inputs, shape (n, d).
            y: training results, shape (n,), finite.
            domain: optional further points, shape (m, d), included when fixing the input
                scaling (typically the candidates that will be predicted).
        """
        X = _as_2d(X, "X")
        targets = np.asarray(y, dtype=float).ravel()
        if len(targets) != len(X) or len(targets) == 0:
            raise ValueError("X and y must have the same, non-zero number of points")
        if not np.all(np.isfinite(targets)):
            raise ValueError("y contains NaN or infinite values")
        reference = X
        if domain is not None:
            D = _as_2d(domain, "domain")
            if D.shape[1] != X.shape[1]:
                raise ValueError("domain and X have different numbers of inputs")
            reference = np.vstack([X, D])
        self._scaler = MinMaxScaler().fit(reference)
        Xs = self._scaler.transform(X)

        rng = np.random.default_rng(self.random_state)
        idx_all = self._subsample(targets, self.max_points, rng)
        Xs, targets = Xs[idx_all], targets[idx_all]
        n_distinct = len(np.unique(Xs, axis=0))
        identifiable = n_distinct >= 3 and float(np.ptp(targets)) > 0.0
        self._trend = None
        # The trend has 2d + 1 coefficients: fit it only with clearly more points than that.
        if self.trend == "quadratic" and identifiable and len(targets) >= 4 * X.shape[1] + 4:
            self._trend = RidgeCV(alphas=_TREND_ALPHAS).fit(_trend_features(Xs), targets)
            targets = targets - self._trend.predict(_trend_features(Xs))

        with _single_threaded_blas(), warnings.catch_warnings():
            # Hyperparameters at a bound (e.g. an irrelevant input's length scale) are a valid
            # answer, not a failure; the fitted kernel is reported to the caller instead.
            warnings.simplefilter("ignore", ConvergenceWarning)
            if identifiable:
                idx_fit = self._subsample(targets, self.max_fit_points, rng)
                kernel, self.ard_ = tune(
                    Xs[idx_fit],
                    targets[idx_fit],
                    name=self.kernel_name,
                    ard=self.ard,
                    noise=self.noise,
                    n_restarts=self.n_restarts,
                    random_state=self.random_state,
                )
            else:
                self.ard_ = self.ard is True
                kernel = prior_kernel(self.kernel_name, X.shape[1], self.ard_, self.noise)
            self._gpr = GaussianProcessRegressor(
                kernel=kernel,
                normalize_y=True,
                optimizer=None,
                alpha=1e-10 if self.noise else 1e-6,
            ).fit(Xs, targets)
        self.optimized = identifiable
        self.n_train = len(targets)
        # normalize_y divides by the std of y (1 when y is constant); needed to express the
        # fitted noise level in the units of y.
        y_std = float(np.std(targets))
        self._y_scale = y_std if y_std > 0 else 1.0
        return self

    def predict(self, X: np.ndarray | list) -> Posterior:
        """Posterior mean and std of the latent function at X (noise excluded from std)."""
        if self._gpr is None or self._scaler is None:
            raise RuntimeError("fit() first")
        X = _as_2d(X, "X")
        Xs = self._scaler.transform(X)
        with _single_threaded_blas():
            mean, cov_std = self._gpr.predict(Xs, return_std=True)
        var = np.square(cov_std) - self.noise_variance
        if self._trend is not None:
            mean = mean + self._trend.predict(_trend_features(Xs))
        return Posterior(mean=np.asarray(mean, float), std=np.sqrt(np.clip(var, 0.0, None)))

    @property
    def noise_variance(self) -> float:
        """Fitted white-noise variance in the units of y squared (0 without a noise term)."""
        if self._gpr is None or not self.noise:
            return 0.0
        white = self._gpr.kernel_.k2  # the kernel is (Constant * stationary) + White
        return float(white.noise_level) * self._y_scale**2

    @property
    def kernel_(self) -> str:
        """The fitted kernel (hyperparameters in scaled-input, standardised-output units)."""
        if self._gpr is None:
            raise RuntimeError("fit() first")
        return str(self._gpr.kernel_)


def _trend_features(Xs: np.ndarray) -> np.ndarray:
    """[x, x^2] of the unit-cube inputs, centred so the two columns are nearly uncorrelated."""
    c = Xs - 0.5
    return np.hstack([c, c**2])
