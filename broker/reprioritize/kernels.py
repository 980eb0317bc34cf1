"""The reprioritization GP's kernel: its form and hyperparameter priors, and the fit that picks
shared or per-input length scales (``ard="auto"``) by BIC. The reasons for the form are in
``broker.reprioritize.gp``'s module doc; apart from it so that the covariance model can be read
and changed without the regression plumbing around it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Kernel, Matern, WhiteKernel

KernelName = Literal["matern52", "rbf"]


def prior_kernel(name: KernelName, n_inputs: int, ard: bool, noise: bool) -> Kernel:
    """``Constant * stationary (+ White)`` at its prior values, in unit-cube input units."""
    length = np.full(n_inputs, 0.5) if ard else 0.5
    bounds = (1e-2, 1e3)
    stationary = (
        Matern(length_scale=length, length_scale_bounds=bounds, nu=2.5)
        if name == "matern52"
        else RBF(length_scale=length, length_scale_bounds=bounds)
    )
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * stationary
    if noise:
        kernel = kernel + WhiteKernel(1e-2, (1e-6, 1e1))
    return kernel


def tune(
    Xs: np.ndarray,
    y: np.ndarray,
    *,
    name: KernelName,
    ard: bool | Literal["auto"],
    noise: bool,
    n_restarts: int,
    random_state: int,
) -> tuple[Kernel, bool]:
    """Fit the hyperparameters; with ``ard="auto"`` pick shared or per-input length scales.

    The choice is by BIC (-2 log marginal likelihood + n_hyperparameters * log n): per-input
    length scales must buy enough likelihood to pay for d-1 extra parameters. With ~50
    points in 4-D they usually do not, and letting them loose overfits (the reference Ackley
    run needs 10 more evaluations on average to find its best point with ARD forced on).
    """
    choices = [False, True] if ard == "auto" and Xs.shape[1] > 1 else [ard is True]
    best: tuple[float, Kernel, bool] | None = None
    for per_input in choices:
        tuner = GaussianProcessRegressor(
            kernel=prior_kernel(name, Xs.shape[1], per_input, noise),
            normalize_y=True,
            n_restarts_optimizer=n_restarts,
            random_state=random_state,
        ).fit(Xs, y)
        k = tuner.kernel_.n_dims
        bic = -2.0 * tuner.log_marginal_likelihood_value_ + k * np.log(len(y))
        if best is None or bic < best[0]:
            best = (bic, tuner.kernel_, per_input)
    assert best is not None
    return best[1], best[2]
