"""broker.reprioritize.gp and .posterior: fits, uncertainty, ARD choice, expected improvement."""

from __future__ import annotations

import numpy as np
import pytest

from broker.reprioritize.gp import GaussianProcess
from broker.reprioritize.posterior import Posterior, expected_improvement


def test_fits_a_smooth_function_and_is_uncertain_away_from_data():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 10, size=(40, 1))
    y = np.sin(X[:, 0]) * 3 + 100  # offset and scale: the output standardisation must cope
    gp = GaussianProcess().fit(X, y)
    X_test = np.linspace(0.5, 9.5, 25).reshape(-1, 1)
    pred = gp.predict(X_test)
    assert np.max(np.abs(pred.mean - (np.sin(X_test[:, 0]) * 3 + 100))) < 0.3
    assert gp.optimized
    far = gp.predict(np.array([[25.0]]))
    assert far.std[0] > 5 * np.max(pred.std)


def test_domain_sets_the_input_scaling():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0.0, 1.0, 0.5, 2.0])
    inside = GaussianProcess().fit(X, y, domain=np.array([[10.0]]))
    assert inside._scaler.data_max_[0] == 10.0
    with pytest.raises(ValueError, match="domain"):
        GaussianProcess().fit(X, y, domain=np.zeros((2, 3)))


def test_auto_ard_switches_off_irrelevant_inputs():
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, size=(80, 4))
    y = np.sin(3 * X[:, 0])  # only the first input matters
    gp = GaussianProcess(trend="constant").fit(X, y)  # the length scales alone
    assert gp.ard_ is True
    lengths = gp._gpr.kernel_.k1.k2.length_scale
    assert lengths[0] * 10 < min(lengths[1:])


def test_auto_ard_keeps_one_length_scale_for_an_isotropic_function():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, size=(50, 4))
    y = np.linalg.norm(X, axis=1) + rng.normal(0, 0.05, size=50)
    gp = GaussianProcess().fit(X, y)
    assert gp.ard_ is False


def test_quadratic_trend_carries_a_bowl_beyond_the_data():
    """A bowl seen only on one flank: the trend finds its centre (value 0) outside the data; a
    zero-mean GP extrapolates the flank's slope and misses it."""
    rng = np.random.default_rng(5)
    X = rng.uniform(0, 1, size=(40, 2))
    centre = np.array([[-0.6, -0.6]])
    y = np.sum((X - centre) ** 2, axis=1) + rng.normal(0, 0.01, len(X))
    domain = np.vstack([X, centre])
    with_trend = GaussianProcess().fit(X, y, domain=domain).predict(centre).mean[0]
    without = GaussianProcess(trend="constant").fit(X, y, domain=domain).predict(centre).mean[0]
    assert abs(with_trend) < 0.1 and abs(without) > 0.3


def test_trend_is_shrunk_away_where_there_is_no_bowl():
    rng = np.random.default_rng(6)
    X = rng.uniform(-1, 1, size=(80, 2))
    y = np.sin(6 * X[:, 0]) * np.cos(6 * X[:, 1])
    X_test = rng.uniform(-1, 1, size=(200, 2))
    truth = np.sin(6 * X_test[:, 0]) * np.cos(6 * X_test[:, 1])
    errors = {
        trend: np.abs(GaussianProcess(trend=trend).fit(X, y).predict(X_test).mean - truth).mean()
        for trend in ("quadratic", "constant")
    }
    assert errors["quadratic"] <= 1.1 * errors["constant"]
    with pytest.raises(ValueError, match="trend"):
        GaussianProcess(trend="cubic")  # type: ignore[arg-type]


def test_noise_term_absorbs_repeated_points_with_different_results():
    X = np.array([[0.0], [0.0], [0.0], [1.0], [2.0], [3.0], [4.0]])
    y = np.array([1.0, 1.4, 0.6, 2.0, 3.0, 4.0, 5.0])
    gp = GaussianProcess().fit(X, y)
    pred = gp.predict(np.array([[0.0]]))
    assert 0.6 < pred.mean[0] < 1.4
    assert gp.noise_variance > 0


def test_constant_results_and_single_points_keep_prior_hyperparameters():
    X = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]])
    gp = GaussianProcess().fit(X, np.full(3, 7.0))
    assert not gp.optimized
    pred = gp.predict(np.array([[0.5, 0.5], [5.0, 5.0]]))
    np.testing.assert_allclose(pred.mean, 7.0)
    single = GaussianProcess().fit(np.array([[1.0, 2.0]]), np.array([3.0]))
    near, far = single.predict(np.array([[1.0, 2.0], [9.0, 9.0]])).std
    assert not single.optimized and near < far


def test_same_input_same_answer():
    rng = np.random.default_rng(4)
    X = rng.uniform(size=(300, 3))
    y = X.sum(axis=1) + rng.normal(0, 0.1, 300)
    a = GaussianProcess().fit(X, y).predict(X[:20])
    b = GaussianProcess().fit(X, y).predict(X[:20])
    np.testing.assert_array_equal(a.mean, b.mean)


def test_hyperparameters_fit_on_a_subsample_but_posterior_uses_every_point():
    rng = np.random.default_rng(5)
    X = rng.uniform(size=(400, 2))
    y = X[:, 0] + rng.normal(0, 0.01, 400)
    gp = GaussianProcess(max_fit_points=64).fit(X, y)
    assert gp.n_train == 400
    capped = GaussianProcess(max_fit_points=64, max_points=100).fit(X, y)
    assert capped.n_train == 100
    # the cap keeps the extreme results: the minimum is still fitted closely
    i = int(np.argmin(y))
    assert abs(capped.predict(X[i : i + 1]).mean[0] - y[i]) < 0.05


def test_rejects_non_finite_input():
    with pytest.raises(ValueError, match="y contains NaN"):
        GaussianProcess().fit(np.zeros((2, 1)), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="X contains NaN"):
        GaussianProcess().fit(np.array([[np.inf], [0.0]]), np.array([1.0, 2.0]))


@pytest.mark.parametrize("minimize", [True, False])
def test_expected_improvement_matches_monte_carlo(minimize):
    rng = np.random.default_rng(6)
    mean = np.array([0.0, 1.0, -1.0, 0.3])
    std = np.array([1.0, 0.5, 2.0, 0.0])
    best = 0.2
    ei = expected_improvement(Posterior(mean, std), best, minimize=minimize)
    samples = mean + std * rng.standard_normal((200_000, 4))
    gain = (best - samples) if minimize else (samples - best)
    np.testing.assert_allclose(ei, np.maximum(gain, 0).mean(axis=0), atol=0.01)
