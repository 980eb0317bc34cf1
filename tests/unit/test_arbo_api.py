"""ARBO endpoints through FastAPI with a real SQLite store in a temporary state directory."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from broker.arbo.routes import router
from broker.config import ArboSettings, Settings
from broker.errors import install_error_handlers


def make_app(tmp_path, **arbo) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.settings = Settings(state_dir=tmp_path, arbo=ArboSettings(**arbo))
    app.include_router(router)
    return app


@pytest.fixture
def client(tmp_path):
    with TestClient(make_app(tmp_path)) as c:
        yield c


def duration(s, p=0.9, t1=1000.0):
    return 20 + t1 * ((1 - p) + p / s)


def test_store_is_created_lazily_in_the_state_dir(tmp_path, client):
    assert not (tmp_path / "arbo.sqlite").exists()
    assert client.post("/arbo/parallelism", json={"task": "t", "default_s": 3}).status_code == 200
    assert (tmp_path / "arbo.sqlite").exists()


def test_unknown_task_is_a_cold_start_with_the_default(client):
    body = client.post("/arbo/parallelism", json={"task": "never-seen", "default_s": 5}).json()
    assert body["s"] == 5 and body["exploring"] and body["runs"] == 0
    assert body["predicted_seconds"] is None and "cold start" in body["reason"]
    info = client.get("/arbo/tasks/never-seen").json()
    assert info["runs"] == 0 and info["model"] is None


def test_feedback_loop_converges_and_reports_the_model(client):
    task = {"task": "align", "default_s": 4, "max_s": 64, "slo": {"max_seconds": duration(12)}}
    chosen = []
    for _ in range(12):
        s = client.post("/arbo/parallelism", json=task).json()["s"]
        chosen.append(s)
        r = client.post("/arbo/feedback", json={"task": "align", "s": s, "seconds": duration(s)})
        assert r.status_code == 200
    assert chosen[0] == 4 and chosen[1] != 4  # default first, then a contrasting s
    final = client.post("/arbo/parallelism", json=task).json()
    assert final["objective"] == "cheapest_within_time" and final["slo_met"] is True
    assert 12 <= final["s"] <= 20  # the cheapest s meeting the time limit is 12
    lo, hi = final["predicted_interval"]
    assert lo <= duration(final["s"]) <= hi
    info = client.get("/arbo/tasks/align").json()
    assert info["runs"] == 12 and info["window_runs"] == 12
    assert info["model"]["p"] == pytest.approx(0.9, abs=0.05)
    assert info["model"]["gp"] is not None


def test_failed_runs_are_kept_but_not_fitted(client):
    client.post("/arbo/feedback", json={"task": "f", "s": 2, "seconds": 50, "succeeded": False})
    client.post("/arbo/feedback", json={"task": "f", "s": 2, "seconds": 500})
    info = client.get("/arbo/tasks/f").json()
    assert (info["runs"], info["succeeded_runs"], info["window_runs"]) == (2, 1, 1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": "t", "s": 0, "seconds": 10}, "s"),
        ({"task": "t", "s": 2, "seconds": -5}, "seconds"),
        ({"task": "t", "s": 2, "seconds": 0}, "seconds"),
        ({"task": "t", "s": 2, "seconds": 1e12}, "seconds"),
        ({"task": "t", "s": 10**9, "seconds": 10}, "s"),
        ({"task": "t", "s": 2, "seconds": 10, "load": 1.5}, "load"),
        ({"task": "", "s": 2, "seconds": 10}, "task"),
    ],
)
def test_bad_feedback_is_422_naming_the_field(client, body, field):
    r = client.post("/arbo/feedback", json=body)
    assert r.status_code == 422
    assert any(err["loc"][-1] == field for err in r.json()["detail"])
    assert client.get("/arbo/tasks/t").json()["runs"] == 0


def test_nan_duration_is_rejected(client):
    r = client.post(
        "/arbo/feedback",
        content='{"task": "t", "s": 2, "seconds": NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"task": "t", "default_s": 0}, "default_s"),
        ({"task": "t", "default_s": 8, "max_s": 4}, "max_s"),
        ({"task": "t", "default_s": 2, "objective": "cheapest_within_time"}, "slo.max_seconds"),
        ({"task": "t", "default_s": 2, "objective": "fastest_within_cost"}, "slo.max_cost"),
        ({"task": "t", "default_s": 2, "objective": "quickest"}, "objective"),
        ({"task": "t", "default_s": 2, "slo": {"confidence": 1.0}}, "confidence"),
        ({"task": "t", "default_s": 2, "slo": {"max_seconds": -1}}, "max_seconds"),
    ],
)
def test_bad_parallelism_request_is_422_naming_the_field(client, body, text):
    r = client.post("/arbo/parallelism", json=body)
    assert r.status_code == 422
    assert text in str(r.json()["detail"])


def test_task_name_in_the_path_is_1_to_255_characters(client):
    for path in ("/arbo/tasks/", "/arbo/tasks/" + "x" * 256):
        r = client.get(path)
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["path", "task"]
    assert client.get("/arbo/tasks/" + "x" * 255).json()["runs"] == 0
    assert client.get("/arbo/tasks/workflow/step").json()["task"] == "workflow/step"


def test_site_load_from_the_metric_view_becomes_the_load_feature(tmp_path):
    app = make_app(tmp_path)
    asked = []

    def free_fraction(site):
        asked.append(site)
        return 0.25 if site == "pool-a" else None

    app.state.site_load = free_fraction
    with TestClient(app) as c:
        with_site = c.post(
            "/arbo/parallelism", json={"task": "t", "default_s": 2, "site": "pool-a"}
        )
        unknown = c.post("/arbo/parallelism", json={"task": "t", "default_s": 2, "site": "pool-b"})
        explicit = c.post("/arbo/parallelism", json={"task": "t", "default_s": 2, "load": 0.1})
        c.post("/arbo/feedback", json={"task": "t", "s": 2, "seconds": 9, "site": "pool-a"})
    assert with_site.json()["load"] == pytest.approx(0.75)
    assert unknown.json()["load"] is None
    assert explicit.json()["load"] == pytest.approx(0.1)
    assert asked == ["pool-a", "pool-b", "pool-a"]
    runs = app.state.arbo.store.recent("t", 10)
    assert runs[0].load == pytest.approx(0.75) and runs[0].site == "pool-a"


def test_a_failing_metric_view_does_not_fail_the_request(tmp_path):
    app = make_app(tmp_path)

    def broken(site):
        raise ConnectionError("influxdb down")

    app.state.site_load = broken
    with TestClient(app) as c:
        r = c.post("/arbo/parallelism", json={"task": "t", "default_s": 3, "site": "x"})
    assert r.status_code == 200 and r.json()["s"] == 3 and r.json()["load"] is None


def test_load_changes_the_decision_once_learned(client):
    """Busy cluster = slower runs; with a time SLO a busier cluster needs more workers."""
    for i in range(24):
        s = [2, 4, 8, 16, 32, 64][i % 6]
        load = (i * 7 % 10) / 10
        seconds = duration(s) * (1 + 0.8 * load)
        client.post("/arbo/feedback", json={"task": "L", "s": s, "seconds": seconds, "load": load})
    ask = {"task": "L", "default_s": 4, "slo": {"max_seconds": duration(16) * 1.3}}
    idle = client.post("/arbo/parallelism", json={**ask, "load": 0.0}).json()
    busy = client.post("/arbo/parallelism", json={**ask, "load": 0.9}).json()
    assert busy["s"] > idle["s"]
    assert busy["predicted_seconds"] / idle["predicted_seconds"] > 1.2 * idle["s"] / busy["s"] - 1


def test_concurrent_feedback_through_the_api_loses_no_run(client):
    def post(i):
        r = client.post("/arbo/feedback", json={"task": "c", "s": 1 + i % 8, "seconds": 10 + i})
        return r.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(post, range(80)))
    assert codes == [200] * 80
    info = client.get("/arbo/tasks/c").json()
    assert info["runs"] == 80
    stored = client.app.state.arbo.store.recent("c", 1000)
    assert sorted(r.seconds for r in stored) == [10.0 + i for i in range(80)]


def test_model_cache_refits_after_new_feedback(client):
    for s in (2, 8):
        client.post("/arbo/feedback", json={"task": "m", "s": s, "seconds": duration(s)})
    first = client.get("/arbo/tasks/m").json()["model"]
    client.post("/arbo/feedback", json={"task": "m", "s": 32, "seconds": duration(32)})
    second = client.get("/arbo/tasks/m").json()["model"]
    assert first["runs_fitted"] == 2 and second["runs_fitted"] == 3
    assert math.isfinite(second["p"])


def test_a_failed_run_does_not_refit_the_model(client):
    for s in (2, 8):
        client.post("/arbo/feedback", json={"task": "f", "s": s, "seconds": duration(s)})
    service = client.app.state.arbo
    fitted, _ = service.model("f")
    body = {"task": "f", "s": 4, "seconds": 5.0, "succeeded": False}
    assert client.post("/arbo/feedback", json=body).status_code == 200
    assert service.model("f")[0] is fitted  # the same succeeded runs: the cached fit
    client.post("/arbo/feedback", json={"task": "f", "s": 16, "seconds": duration(16)})
    assert service.model("f")[0] is not fitted
