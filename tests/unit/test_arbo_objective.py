"""ARBO decisions: cold start, exploration, objectives, SLOs with confidence, best effort."""

from __future__ import annotations

import math

import numpy as np
import pytest

from broker.arbo.estimator import Run, fit
from broker.arbo.objective import Goal, candidates, decide


def truth(s, p=0.9, t1=1000.0, c=20.0):
    return c + t1 * ((1 - p) + p / s)


def history(s_values, p=0.9, seed=0, sigma=0.05):
    rng = np.random.default_rng(seed)
    return [Run(s, truth(s, p) * math.exp(rng.normal(0, sigma))) for s in s_values]


def test_cold_start_uses_the_default_without_inventing_a_prediction():
    d = decide(None, Goal(), default_s=6, max_s=64)
    assert d.s == 6 and d.exploring
    assert d.predicted_seconds is None and d.predicted_interval is None
    assert "cold start" in d.reason


def test_default_is_clamped_to_max_s():
    assert decide(None, Goal(), default_s=100, max_s=16).s == 16


@pytest.mark.parametrize("objective", ["fastest", "cheapest"])
def test_second_run_contrasts_the_first_by_at_least_a_factor_two(objective):
    model = fit(history([8]))
    d = decide(model, Goal(objective), default_s=8, max_s=64)
    assert d.exploring
    assert max(d.s, 8) / min(d.s, 8) >= 2
    # towards where the objective points: more workers for speed, fewer for cost
    assert (d.s > 8) if objective == "fastest" else (d.s < 8)


def test_cheapest_within_time_meets_the_limit_with_the_asked_confidence():
    model = fit(history([1, 4, 16, 64, 2, 8, 32, 4, 16, 8, 12, 24], sigma=0.05))
    limit = truth(10) * 1.05
    goal = Goal("cheapest_within_time", max_seconds=limit, confidence=0.9)
    d = decide(model, goal, default_s=4, max_s=64)
    pred = model.predict(np.array([d.s]))
    assert d.slo_met is True
    assert pred.prob_below(limit)[0] >= 0.9
    # and it is the cheapest such s: one worker fewer would not meet the SLO
    assert model.predict(np.array([d.s - 1])).prob_below(limit)[0] < 0.9
    assert truth(d.s) <= limit


def test_fastest_within_cost_respects_the_cost_limit():
    model = fit(history([1, 4, 16, 64, 2, 8, 32, 4, 16, 8], p=0.95))
    max_cost = 8 * truth(8, p=0.95)
    goal = Goal("fastest_within_cost", max_cost=max_cost, price=1.0, confidence=0.9)
    d = decide(model, goal, default_s=4, max_s=64)
    assert d.slo_met is True
    assert d.s * model.predict(np.array([d.s])).quantile(0.9)[0] <= max_cost
    assert 1 < d.s < 64


def test_impossible_slo_is_reported_with_the_best_effort_not_a_silent_one():
    model = fit(history([1, 4, 16, 64, 2, 8, 32, 4, 16, 8], p=0.9))
    goal = Goal("cheapest_within_time", max_seconds=truth(64) * 0.5, confidence=0.9)
    d = decide(model, goal, default_s=4, max_s=64)
    assert d.slo_met is False
    assert "no s" in d.reason and "best effort" in d.reason
    assert d.s >= 32  # the fastest region is the most likely to meet a time limit


def test_interval_contains_the_prediction_and_cost_is_s_times_duration_times_price():
    model = fit(history([2, 8, 32, 4, 16]))
    d = decide(model, Goal("fastest", price=0.5), default_s=8, max_s=64)
    lo, hi = d.predicted_interval
    assert lo < d.predicted_seconds < hi
    assert d.predicted_cost == pytest.approx(d.s * 0.5 * d.predicted_seconds)


def test_candidates_cover_large_ranges_geometrically():
    c = candidates(100_000, default_s=777)
    assert c[0] == 1 and c[-1] == 100_000 and 777 in c and len(c) <= 300
    assert list(candidates(10, 3)) == list(range(1, 11))
