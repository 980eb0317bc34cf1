"""ARBO decisions: cold start, exploration, objectives, SLOs with confidence, best effort."""

from __future__ import annotations

import math

import numpy as np
import pytest

from broker.arbo.amdahl import Run
from broker.arbo.estimator import fit
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


def test_cold_start_for_plain_cheapest_is_one_worker():
    # s x T(s) grows with s under every Amdahl law with start-up overhead: no default needed
    d = decide(None, Goal("cheapest"), default_s=8, max_s=64)
    assert d.s == 1 and d.exploring and d.predicted_seconds is None
    assert "cold start" in d.reason


@pytest.mark.parametrize("objective", ["fastest", "fastest_within_cost"])
def test_second_run_contrasts_the_first_by_at_least_a_factor_two(objective):
    model = fit(history([8]))
    max_cost = 1e9 if objective == "fastest_within_cost" else None
    d = decide(model, Goal(objective, max_cost=max_cost), default_s=8, max_s=64)
    assert d.exploring
    assert max(d.s, 8) / min(d.s, 8) >= 2
    # towards where the objective points: more workers for speed
    assert d.s > 8


def test_second_run_for_cost_within_a_time_limit_explores_fewer_workers():
    model = fit(history([8]))
    # the run at s=8 met a generous limit: fewer workers (cheaper) is where the answer lies
    goal = Goal("cheapest_within_time", max_seconds=truth(8) * 3, confidence=0.9)
    d = decide(model, goal, default_s=8, max_s=64)
    assert d.exploring and d.s <= 4 and "exploring" in d.reason
    # the run at s=8 already broke the limit: fewer workers cannot help, so look at more
    goal = Goal("cheapest_within_time", max_seconds=truth(8) * 0.8, confidence=0.9)
    d = decide(model, goal, default_s=8, max_s=64)
    assert d.exploring and d.s >= 16


def test_plain_cheapest_goes_straight_to_few_workers_without_a_contrast_run():
    d = decide(fit(history([8])), Goal("cheapest"), default_s=8, max_s=64)
    # the expected cost (lognormal mean) counts the wide uncertainty far from s=8 against s=1
    assert d.s <= 2 and not d.exploring


def test_best_effort_does_not_buy_many_workers_for_a_negligible_gain():
    # with a per-worker cost the tail of T(s) is flat: the quantiles at s=24..64 differ by < 2 %
    rng = np.random.default_rng(4)
    runs = [
        Run(s, (truth(s, p=0.99) + 1.0 * s) * math.exp(rng.normal(0, 0.03)))
        for s in [1, 2, 4, 8, 16, 32, 64, 24, 48, 12, 40, 56] * 2
    ]
    model = fit(runs)
    goal = Goal("cheapest_within_time", max_seconds=10.0, confidence=0.9)
    d = decide(model, goal, default_s=8, max_s=64)
    assert d.slo_met is False and "best effort" in d.reason
    cand = candidates(64, 8)
    q = model.predict(cand).quantile(0.9)
    # as close to the limit as the closest s (within 2 %), and the cheapest such s
    assert q[d.s - 1] <= q.min() * 1.02
    near = cand[q <= q.min() * 1.02]
    assert d.s == near.min()


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
