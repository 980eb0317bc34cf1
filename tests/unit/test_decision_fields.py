"""The request fields of a routing decision: job_id, mode and fallback_order, and what the
broker answers and records with them (its degraded answer is the fallback order)."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.decisions.log import FALLBACK_STATE, RANKED, STALE
from tests.support.decisions import logging_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "requests"
BODY = json.loads((EXAMPLES / "bwa-mem-data-in-bari.json").read_text())
IDS = [d["id"] for d in BODY["destinations"]]


@pytest.fixture
def app(tmp_path):
    return logging_app(tmp_path)


def buffered(app):
    return app.state.decisions.take(10**9)


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"mode": "off"}, "mode"),
        ({"job_id": -1}, "job_id"),
        ({"job_id": 2**63}, "job_id"),
        ({"job_id": "seven"}, "job_id"),
        ({"fallback_order": "pulsar_it_bari"}, "fallback_order"),
    ],
)
def test_bad_decision_fields_are_a_422_naming_the_field(client, extra, field):
    r = client.post("/process_data", json={**BODY, **extra})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][1] == field


def test_a_fallback_order_longer_than_the_limit_is_a_422_naming_the_setting(tmp_path):
    from broker.app import create_app
    from tests.support.broker_app import settings

    app = create_app(settings(tmp_path, TPV_BROKER_LIMITS__MAX_DESTINATIONS=2))
    body = {"destinations": [{"id": "a"}, {"id": "b"}], "fallback_order": ["a", "b", "c"]}
    with TestClient(app) as c:
        r = c.post("/process_data", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "fallback_order"]
    assert "limits.max_destinations" in r.json()["detail"][0]["msg"]


def test_old_bodies_keep_working_and_are_counted_not_logged(app):
    with TestClient(app) as c:
        r = c.post("/process_data", json=BODY)
        assert r.status_code == 200 and sorted(r.json()["sorted_destinations"]) == sorted(IDS)
        assert buffered(app) == []  # no job id: nothing to join outcomes with
        assert app.state.decisions.counts[RANKED, "enforce"] == 1


def test_enforce_routes_to_the_broker_first_choice(app):
    with TestClient(app) as c:
        answer = c.post("/process_data", json={**BODY, "job_id": 7}).json()
        [d] = buffered(app)
    first = answer["sorted_destinations"][0]
    assert d.job_id == 7 and d.mode == "enforce" and d.chosen_by == "broker"
    assert d.ids[d.used] == first
    assert [d.ids[i] for i in d.order] == answer["sorted_destinations"]
    assert len(d.transfer_s) == len(d.wait_s) == len(d.estimates) == len(IDS)


def test_shadow_answers_the_broker_ranking_and_records_the_fallback_first_as_used(app):
    fallback = list(reversed(IDS))
    with TestClient(app) as c:
        enforced = c.post("/process_data", json=BODY).json()["sorted_destinations"]
        body = {**BODY, "job_id": 8, "mode": "shadow", "fallback_order": fallback}
        shadowed = c.post("/process_data", json=body).json()["sorted_destinations"]
        [d] = buffered(app)
        counts = app.state.decisions.counts
    assert shadowed == enforced != fallback  # the broker's own answer, only recorded
    assert d.chosen_by == "fallback" and d.mode == "shadow"
    assert d.ids[d.used] == fallback[0]
    assert counts[RANKED, "shadow"] == 1


def test_shadow_without_fallback_order_records_tpv_first_as_used(app):
    body = {**BODY, "job_id": 9, "mode": "shadow", "preference": IDS[::-1]}
    with TestClient(app) as c:
        c.post("/process_data", json=body)
        [d] = buffered(app)
    assert d.ids[d.used] == IDS[-1]


def test_when_no_candidate_is_fresh_the_answer_is_the_fallback_order(app):
    # destinations the broker has no metrics for: it cannot rank them
    body = {
        "destinations": [{"id": "x1"}, {"id": "x2"}, {"id": "x3"}],
        "fallback_order": ["x3", "unknown", "x1", "x3"],  # unknown and repeated ids ignored
        "job_id": 10,
    }
    with TestClient(app) as c:
        r = c.post("/process_data?explain=true", json=body)
        assert r.json()["sorted_destinations"] == ["x3", "x1", "x2"]  # completed in TPV order
        assert "the fallback order" in r.json()["explanation"]["summary"]
        assert buffered(app) == []  # an explain request is a person asking: not recorded
        answer = c.post("/process_data", json=body).json()["sorted_destinations"]
        [d] = buffered(app)
        counts = app.state.decisions.counts
    assert answer == ["x3", "x1", "x2"]
    assert d.chosen_by == "fallback" and d.ids[d.used] == "x3"
    assert counts[STALE, "enforce"] == 1
    # without a fallback order, TPV's own order, as before
    with TestClient(logging_app(app.state.settings.state_dir)) as c:
        plain = {k: v for k, v in body.items() if k != "fallback_order"}
        assert c.post("/process_data", json=plain).json()["sorted_destinations"] == [
            "x1",
            "x2",
            "x3",
        ]


def test_a_bug_in_the_ranking_answers_the_fallback_order_and_is_recorded(app, monkeypatch):
    import broker.ranking.rank as rank_module

    def broken(*args, **kwargs):
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(rank_module, "score", broken)
    fallback = [IDS[2], IDS[0]]
    with TestClient(app) as c:
        r = c.post("/process_data", json={**BODY, "job_id": 11, "fallback_order": fallback})
        [d] = buffered(app)
        counts = app.state.decisions.counts
    assert r.status_code == 200
    expected = fallback + [i for i in IDS if i not in fallback]
    assert r.json()["sorted_destinations"] == expected
    assert d.chosen_by == "fallback" and d.ids[d.used] == IDS[2] and d.transfer_s is None
    assert counts[FALLBACK_STATE, "enforce"] == 1


def test_shadow_mode_puts_the_fallback_choice_in_flight_not_the_broker_choice(tmp_path):
    app = logging_app(tmp_path)
    with TestClient(app) as c:
        rows = c.post("/process_data?explain=true", json=BODY).json()["explanation"]
        first = rows["destinations"][0]["id"]
        settings = app.state.settings
        routed = app.state.routed
        other = next(
            d["id"]
            for d in rows["destinations"]
            if d["state"] == "fresh" and settings.site_of(d["id"]) != settings.site_of(first)
        )
        now = app.state.cache.current.view.now()

        def jobs(dest):
            return routed.in_flight(settings.site_of(dest), -1e18, now).jobs

        before = (jobs(first), jobs(other))
        body = {**BODY, "job_id": 12, "mode": "shadow", "fallback_order": [other]}
        c.post("/process_data", json=body)
        after = (jobs(first), jobs(other))
    assert after == (before[0], before[1] + 1)  # the fallback's choice got the job
