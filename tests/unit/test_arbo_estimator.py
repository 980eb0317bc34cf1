"""ARBO estimator: the Amdahl fit recovers known truth, the GP finds what Amdahl misses, and
uncertainty is honest (wide with few runs, narrowing with more)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from broker.arbo.amdahl import Run, fit_amdahl
from broker.arbo.estimator import fit


def amdahl_runs(
    p, n, seed, c=30.0, t1=1200.0, k=1.0, sigma=0.08, overhead=0.0, beta=0.0, cliff=1.0
):
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(n):
        s = int(rng.choice([1, 2, 4, 8, 16, 32, 64]))
        x = float(100 * math.exp(rng.normal(0, 0.4)))
        load = float(rng.uniform(0, 0.9))
        median = (c + t1 * (x / 100) ** k * ((1 - p) + p / s) + overhead * s) * (1 + beta * load)
        median *= cliff if s >= 32 else 1.0  # e.g. a saturated network from 32 workers on
        runs.append(Run(s, median * math.exp(rng.normal(0, sigma)), x, load))
    return runs


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_fit_recovers_parallel_fraction_and_predicts_the_curve(p):
    fitted = fit_amdahl(amdahl_runs(p, 30, seed=int(p * 100), k=0.8))
    # c, T1 (1-p) and k trade off against each other when x varies little; p stays close
    assert fitted.p == pytest.approx(p, abs=0.1)
    for s, x in [(1, 100.0), (8, 60.0), (64, 160.0)]:
        true = 30.0 + 1200.0 * (x / 100) ** 0.8 * ((1 - p) + p / s)
        predicted = fitted.log_mean(np.array([s]), x / fitted.x0)[0]
        sd = math.sqrt(fitted.log_mean_var(np.array([s]), x / fitted.x0)[0])
        # the true curve lies inside the fit's own 3-sd band, and that band is informative
        assert abs(predicted - math.log(true)) <= 3 * sd
        assert sd < 0.15


def test_fit_is_robust_to_one_stuck_run():
    runs = amdahl_runs(0.9, 25, seed=3)
    clean = fit_amdahl(runs)
    stuck = runs[:-1] + [Run(runs[-1].s, runs[-1].seconds * 20, runs[-1].input_size, 0.5)]
    dirty = fit_amdahl(stuck)
    assert dirty.p == pytest.approx(clean.p, abs=0.03)
    assert dirty.t1 == pytest.approx(clean.t1, rel=0.15)


def test_intervals_are_wide_with_few_runs_and_narrow_with_many():
    runs = amdahl_runs(0.9, 40, seed=5)
    s = np.array([1, 8, 64])
    few = fit(runs[:2]).predict(s, 100.0, 0.5)
    many = fit(runs).predict(s, 100.0, 0.5)
    width_few = np.log(few.quantile(0.95) / few.quantile(0.05))
    width_many = np.log(many.quantile(0.95) / many.quantile(0.05))
    assert np.all(width_few > 1.5 * width_many)


@pytest.mark.parametrize("n", [5, 30])
def test_prediction_intervals_cover_new_runs_at_about_their_level(n):
    # pooled over three histories: one history's noise draw can be unusually quiet or loud
    inside = total = 0
    for seed in (7, 17, 27):
        model = fit(amdahl_runs(0.9, n, seed=seed, overhead=2.0, beta=0.5))
        for run in amdahl_runs(0.9, 200, seed=seed + 1, overhead=2.0, beta=0.5):
            pred = model.predict(np.array([run.s]), run.input_size, run.load)
            inside += bool(pred.quantile(0.05)[0] <= run.seconds <= pred.quantile(0.95)[0])
            total += 1
    if n < 10:
        # few runs: the Laplace parameter variance errs on the wide side (never too narrow)
        assert inside / total >= 0.9
    else:
        assert 0.8 <= inside / total <= 0.97


def test_load_slow_down_is_fitted_before_the_gp_starts():
    runs = amdahl_runs(0.9, 7, seed=21, beta=0.8, sigma=0.03)
    model = fit(runs)
    assert model.gp is None
    # log(1 + 0.8 L) has slope 0.8 / (1 + 0.8 L): 0.5 to 0.8 over the loads drawn
    assert 0.3 <= model.amdahl.b <= 1.0
    busy, idle = (model.predict(np.array([8]), 100.0, load).mu[0] for load in (0.9, 0.1))
    assert busy - idle == pytest.approx(math.log(1.72 / 1.08), abs=0.15)
    assert "load_coef" in model.describe()


def test_noise_is_the_prior_until_runs_outnumber_the_parameters():
    few = fit(amdahl_runs(0.9, 3, seed=9, sigma=0.01)).predict(np.array([8]), 100.0, 0.5)
    assert few.dof == 4 and math.sqrt(few.var[0] - few.epistemic_var[0]) == pytest.approx(0.15)


def test_per_worker_overhead_is_fitted_and_makes_fastest_an_interior_optimum():
    runs = amdahl_runs(0.95, 30, seed=13, overhead=8.0, sigma=0.05)
    fitted = fit_amdahl(runs)
    assert fitted.o == pytest.approx(8.0, rel=0.35)
    s = np.arange(1, 65)
    best = int(s[np.argmin(fitted.log_mean(s, 1.0))])
    # true optimum sqrt(T1 p / o) = 11.9; the curve is flat there, so a band around it
    assert 8 <= best <= 18


def test_gp_residual_learns_what_amdahl_misses():
    """A slow-down from 32 workers on is in no parametric term; the GP must model it."""
    runs = amdahl_runs(0.95, 40, seed=11, overhead=8.0, beta=0.8, sigma=0.05, cliff=1.6)
    model = fit(runs, gp_min_runs=8)
    no_gp = fit(runs, gp_min_runs=10_000)
    assert model.gp is not None and no_gp.gp is None
    truth = amdahl_runs(0.95, 200, seed=12, overhead=8.0, beta=0.8, sigma=0.0, cliff=1.6)
    err_gp, err_plain = [], []
    for run in truth:
        s = np.array([run.s])
        err_gp.append(abs(model.predict(s, run.input_size, run.load).mu[0] - math.log(run.seconds)))
        err_plain.append(
            abs(no_gp.predict(s, run.input_size, run.load).mu[0] - math.log(run.seconds))
        )
    assert np.mean(err_gp) < 0.7 * np.mean(err_plain)


def test_no_runs_no_model():
    assert fit([]) is None


def test_describe_reports_fitted_parameters():
    model = fit(amdahl_runs(0.9, 12, seed=2))
    info = model.describe()
    assert info["runs_fitted"] == 12
    assert 0 <= info["p"] <= 1 and info["p_sd"] > 0
    assert info["gp"] is not None and "RBF" in info["gp"]["kernel"]
