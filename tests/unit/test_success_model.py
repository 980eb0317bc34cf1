"""The per-tool success model: shrinkage, version hierarchy, unseen values, edge cases."""

import math
import random

import numpy as np
import pytest

from broker.success.model import SuccessModel, value_levels


def expit(x):
    return 1 / (1 + math.exp(-x))


def fit(rows, ok, fail, **kw):
    return SuccessModel().fit(rows, ok, fail, **kw)


def test_version_values_have_parents_and_ids_do_not():
    assert value_levels("3.16.4") == ["3", "3.16", "3.16.4"]
    assert value_levels("1.2.11.4") == ["1", "1.2", "1.2.11.4"]
    assert value_levels("pulsar_de_freiburg") == ["pulsar_de_freiburg"]
    assert value_levels("develop") == ["develop"]
    assert value_levels("debian12") == ["debian12"]


def test_no_data_answers_the_prior():
    model = fit([], [], [], prior_logit=1.5)
    assert model.predict_one({"os": "rocky9"}) == pytest.approx(expit(1.5))


def test_all_success_is_confident_but_never_certain_and_grows_with_evidence():
    few = fit([{"os": "a"}], [3], [0])
    many = fit([{"os": "a"}], [300], [0])
    p_few, p_many = few.predict_one({"os": "a"}), many.predict_one({"os": "a"})
    assert 0.5 < p_few < p_many < 1.0
    assert p_few < 0.97  # three lucky runs are not proof
    none = fit([{"os": "a"}], [0], [300])
    assert 0.0 < none.predict_one({"os": "a"}) < 0.05


def test_single_row_lands_between_prior_and_data():
    model = fit([{"os": "a"}], [0], [1], prior_logit=2.0)
    p = model.predict_one({"os": "a"})
    assert 0.0 < p < expit(2.0)
    assert p > 0.2  # one failure does not make it hopeless


def test_little_history_is_shrunk_more_than_a_long_record():
    rows = [{"dest": "a"}, {"dest": "b"}, {"dest": "c"}]
    short = fit(rows, [2, 95, 95], [0, 5, 5])
    long = fit(rows, [200, 95, 95], [0, 5, 5])
    p_short, p_long = short.predict_one(rows[0]), long.predict_one(rows[0])
    p_unseen = short.predict_one({"dest": "never"})
    assert p_long > 0.98
    # two runs move the estimate only a little away from what an unseen destination gets
    assert abs(p_short - p_unseen) < abs(p_long - p_unseen) / 2


def test_unseen_version_borrows_from_its_family():
    rows, ok, fail = [], [], []
    for v, good in (("7.3.0", 2), ("7.5.0", 1), ("9.3.0", 30), ("11.2.0", 30)):
        rows.append({"gcc": v})
        ok.append(good)
        fail.append(30 - good if v.startswith("7.") else 0)
    model = fit(rows, ok, fail)
    assert model.predict_one({"gcc": "7.4.1"}) < 0.3  # never seen, but 7.x fails
    assert model.predict_one({"gcc": "11.9.9"}) > 0.8
    # a wholly unknown value or feature adds nothing: the intercept decides
    assert model.predict_one({"gcc": "13.1.0"}) == pytest.approx(model.base_rate)
    assert model.predict_one({"nope": "x"}) == pytest.approx(model.base_rate)
    _, parts = model.explain({"gcc": "7.4.1"})
    assert parts[0].seen is False and parts[0].effect < 0


def test_effect_scale_follows_the_data_by_empirical_bayes():
    rng = random.Random(3)
    values = [f"v{i}" for i in range(20)]
    rows = [{"f": v} for v in values]
    # outcomes independent of the feature: the evidence picks the smallest effects
    noise = [sum(rng.random() < 0.8 for _ in range(20)) for _ in values]
    flat = fit(rows, noise, [20 - k for k in noise])
    # the feature decides: large effects
    strong = [20 if i % 2 else 1 for i in range(20)]
    sharp = fit(rows, strong, [20 - k for k in strong])
    assert flat.scale < sharp.scale
    spread = np.ptp(flat.predict_proba(rows))
    assert spread < 0.15 and np.ptp(sharp.predict_proba(rows)) > 0.7


def test_probabilities_are_calibrated_on_held_out_draws():
    """Data from a known logistic model: held-out predictions match the true probabilities."""
    rng = random.Random(11)
    true = {("x86", "yes"): 0.97, ("x86", "no"): 0.6, ("arm", "yes"): 0.85, ("arm", "no"): 0.3}
    rows, ok, fail = [], [], []
    for (arch, cvmfs), p in true.items():
        for _ in range(2):  # two destinations per combination
            n = 150
            k = sum(rng.random() < p for _ in range(n))
            rows.append({"arch": arch, "cvmfs": cvmfs})
            ok.append(k)
            fail.append(n - k)
    model = fit(rows, ok, fail)
    for (arch, cvmfs), p in true.items():
        assert model.predict_one({"arch": arch, "cvmfs": cvmfs}) == pytest.approx(p, abs=0.06)


def test_offset_shifts_the_prediction_on_the_logit_scale():
    model = fit([{"os": "a"}, {"os": "b"}], [50, 40], [5, 10])
    eta, _ = model.explain({"os": "a"})
    assert model.predict_one({"os": "a"}, offset=-1.0) == pytest.approx(expit(eta - 1.0))
