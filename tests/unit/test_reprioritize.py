"""POST /reprioritize through a FastAPI app that includes the router (as the broker app does)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from scipy.stats import spearmanr

from broker.errors import install_error_handlers
from broker.reprioritize.routes import router


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return TestClient(app)


def bowl(X: np.ndarray) -> np.ndarray:
    return np.sum((X - np.array([0.3, -0.2])) ** 2, axis=1)


def make_request(n_done=30, n_pending=40, seed=0, f=bowl, **extra) -> dict:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n_done + n_pending, 2))
    y = f(X)
    return {
        "completed": [{"id": i, "x": X[i].tolist(), "y": float(y[i])} for i in range(n_done)],
        "pending": [{"id": i, "x": X[i].tolist()} for i in range(n_done, n_done + n_pending)],
        **extra,
    }


def truth_of(body: dict, f=bowl) -> dict:
    return {t["id"]: float(f(np.array([t["x"]]))[0]) for t in body["pending"]}


def post(client, body, **params):
    return client.post("/reprioritize", json=body, params=params)


def test_orders_pending_tasks_by_promise(client):
    body = make_request()
    r = post(client, body)
    assert r.status_code == 200, r.text
    out = r.json()
    truth = truth_of(body)
    assert sorted(out["order"]) == sorted(truth)
    true_rank = sorted(truth, key=truth.get)
    assert out["order"][0] in true_rank[:3]
    rho = spearmanr([truth[i] for i in out["order"]], range(len(truth))).statistic
    assert rho > 0.8


def test_priorities_follow_order_for_eqsql(client):
    out = post(client, make_request()).json()
    n = len(out["order"])
    assert [out["priorities"][str(i)] for i in out["order"]] == list(range(n, 0, -1))
    assert set(out["predictions"]) == {str(i) for i in out["order"]}


def test_maximize_mirrors_minimize(client):
    low = make_request(goal="minimize")
    high = make_request(goal="maximize", f=lambda X: -bowl(X))
    a, b = post(client, low).json(), post(client, high).json()
    assert a["order"] == b["order"]
    for k, p in a["predictions"].items():
        assert b["predictions"][k]["mean"] == pytest.approx(-p["mean"], abs=1e-6)
        assert b["predictions"][k]["std"] == pytest.approx(p["std"], rel=1e-6)


def test_mean_and_ucb_orders_agree_with_returned_predictions(client):
    for acquisition, key in (
        ("mean", lambda p: p["mean"]),
        ("ucb", lambda p: p["mean"] - 2 * p["std"]),
    ):
        out = post(client, make_request(acquisition=acquisition)).json()
        values = [key(out["predictions"][str(i)]) for i in out["order"]]
        assert values == sorted(values), acquisition


def test_explanation_reports_the_fitted_model(client):
    out = post(client, make_request(), explain="true").json()
    exp = out["explanation"]
    assert exp["hyperparameters_fitted"] and "Matern" in exp["kernel"]
    scores = [exp["scores"][str(i)] for i in out["order"]]
    assert scores == sorted(scores, reverse=True)
    assert "explanation" not in post(client, make_request()).json()


def test_same_request_same_answer(client):
    body = make_request(seed=3)
    assert post(client, body).json() == post(client, body).json()


def test_ids_keep_their_type(client):
    body = {
        "completed": [{"id": "run-a", "x": [0.0], "y": 1.0}, {"id": 7, "x": [1.0], "y": 0.0}],
        "pending": [{"id": 8, "x": [0.9]}, {"id": "run-b", "x": [-1.0]}],
    }
    out = post(client, body).json()
    assert out["order"] == [8, "run-b"]


def test_duplicate_points_are_fine(client):
    body = {
        "completed": [
            {"id": 1, "x": [0.0, 0.0], "y": 1.0},
            {"id": 2, "x": [0.0, 0.0], "y": 1.5},
            {"id": 3, "x": [1.0, 1.0], "y": 3.0},
            {"id": 4, "x": [-1.0, 0.5], "y": 2.5},
        ],
        "pending": [
            {"id": 5, "x": [2.0, 2.0]},
            {"id": 6, "x": [0.0, 0.0]},
            {"id": 7, "x": [0.0, 0.0]},
            {"id": 8, "x": [1.0, 1.0]},
        ],
    }
    out = post(client, body).json()
    p6 = out["predictions"]["6"]["mean"]
    assert 1.0 <= p6 <= 1.5
    # identical pending points tie: the one sent first goes first, right after it
    i = out["order"].index(6)
    assert out["order"][i + 1] == 7


def test_constant_results_explore_away_from_data(client):
    body = {
        "completed": [{"id": i, "x": [float(i), 0.0], "y": 4.0} for i in range(5)],
        "pending": [{"id": 10, "x": [2.1, 0.0]}, {"id": 11, "x": [9.0, 9.0]}],
    }
    out = post(client, body, explain="true").json()
    assert out["explanation"]["hyperparameters_fitted"] is False
    assert out["predictions"]["10"]["mean"] == pytest.approx(4.0)
    assert out["order"] == [11, 10]


def test_single_completed_point(client):
    body = {
        "completed": [{"id": 1, "x": [0.0, 0.0, 0.0], "y": 2.0}],
        "pending": [{"id": 2, "x": [0.0, 0.0, 0.1]}, {"id": 3, "x": [5.0, 5.0, 5.0]}],
    }
    out = post(client, body).json()
    assert out["predictions"]["2"]["std"] < out["predictions"]["3"]["std"]
    assert sorted(out["order"]) == [2, 3]


def _errors(response) -> list[tuple[list, str]]:
    assert response.status_code == 422, response.text
    return [(d["loc"], d["msg"]) for d in response.json()["detail"]]


def test_nan_result_is_rejected_naming_the_field(client):
    # a Python client's json.dumps(float("nan")) sends the bare NaN token
    raw = make_request(n_done=3, n_pending=2)
    raw["completed"][1]["y"] = float("nan")
    r = client.post(
        "/reprioritize",
        content=json.dumps(raw),
        headers={"content-type": "application/json"},
    )
    errors = _errors(r)
    assert errors[0][0] == ["body", "completed", 1, "y"]
    assert "finite" in errors[0][1]


def test_infinite_coordinate_is_rejected(client):
    raw = make_request(n_done=3, n_pending=2)
    raw["pending"][0]["x"][1] = float("inf")
    r = client.post(
        "/reprioritize", content=json.dumps(raw), headers={"content-type": "application/json"}
    )
    assert _errors(r)[0][0] == ["body", "pending", 0, "x", 1]


@pytest.mark.parametrize(
    ("mutate", "loc", "text"),
    [
        (lambda b: b["pending"][1].update(x=[0.0]), ["body", "pending"], "pending[1].x has 1"),
        (lambda b: b["completed"][2].update(x=[0, 0, 0]), ["body", "completed"], "completed[2].x"),
        (lambda b: b.update(completed=[]), ["body", "completed"], "at least 1"),
        (lambda b: b.update(pending=[]), ["body", "pending"], "at least 1"),
        (lambda b: b["pending"][0].update(x=[]), ["body", "pending", 0, "x"], "at least 1"),
        (lambda b: b["pending"][0].update(id=0), ["body", "pending"], "repeats completed[0].id"),
        (lambda b: b["pending"][1].update(id="3"), ["body", "pending"], "pending[1].id '3'"),
        (lambda b: b.update(goal="best"), ["body", "goal"], "minimize"),
        (lambda b: b.update(acquisition="pi"), ["body", "acquisition"], "ei"),
        (lambda b: b["completed"][0].pop("y"), ["body", "completed", 0, "y"], "required"),
    ],
)
def test_bad_requests_answer_422_naming_the_field(client, mutate, loc, text):
    body = make_request(n_done=4, n_pending=3)
    mutate(body)
    errors = _errors(post(client, body))
    assert any(e_loc == loc and text in msg for e_loc, msg in errors), errors


def test_the_broker_publishes_each_schema_under_its_class_name():
    """Two models of one name (reprioritize's explanation and the ranking's were both
    `Explanation`) make FastAPI publish module-mangled schema names such as
    `broker__reprioritize__models__Explanation`, which OpenAPI client generators turn into
    unwieldy types. Each model has a name of its own; the JSON fields are unchanged."""
    from broker.app import create_app
    from broker.config import load_settings

    schemas = create_app(load_settings(environ={})).openapi()["components"]["schemas"]
    assert {"Explanation", "ReprioritizeExplanation"} <= set(schemas)
    assert [name for name in schemas if "__" in name] == []
    explanation = schemas["ReprioritizeResponse"]["properties"]["explanation"]
    assert "#/components/schemas/ReprioritizeExplanation" in json.dumps(explanation)
