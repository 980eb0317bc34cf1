"""Bearer tokens on the HTTP API: what they guard, how the API description declares them,
behind a proxy prefix, and an empty one refused."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.config import ConfigError, load_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "requests"


def example(name):
    return json.loads((EXAMPLES / name).read_text())


def test_tokens_guard_everything_but_health(secured):
    body = example("fastqc-small-input.json")
    assert secured.get("/health").status_code == 200
    assert secured.get("/destinations/").status_code == 401
    assert secured.get("/openapi.json").status_code == 200  # the API's description, no data
    for method, path in [("post", "/process_data"), ("get", "/destinations"),
                         ("post", "/arbo/parallelism"), ("post", "/reprioritize")]:  # fmt: skip
        r = secured.request(method, path, json=body)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", path
    for bad in ("Bearer nope", "Bearer", "Basic tok2", "tok2", "Bearer tok2x"):
        r = secured.post("/process_data", json=body, headers={"Authorization": bad})
        assert r.status_code == 401, bad
    good = {"Authorization": "Bearer tok2"}
    assert secured.post("/process_data", json=body, headers=good).status_code == 200
    assert secured.get("/destinations", headers=good).status_code == 200
    lower = {"authorization": "bearer tok1"}  # header and scheme names are case-insensitive
    assert secured.post("/process_data", json=body, headers=lower).status_code == 200


def test_openapi_declares_the_bearer_token_when_tokens_are_set(secured, client):
    schema = secured.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["security"] == [{"bearer": []}]
    assert schema["paths"]["/health"]["get"]["security"] == []
    assert "security" not in client.get("/openapi.json").json()  # no tokens: nothing to declare


def test_behind_a_proxy_prefix_the_same_paths_are_open_and_guarded():
    settings = load_settings(environ={"TPV_BROKER_AUTH__TOKENS": "tok1"})
    with TestClient(create_app(settings), root_path="/broker") as c:
        assert c.get("/broker/health").status_code == 200
        assert c.get("/broker/destinations").status_code == 401
        assert c.get("/brokerx/health").status_code != 200  # not the prefix: not open
        good = {"Authorization": "Bearer tok1"}
        assert c.get("/broker/destinations", headers=good).status_code == 200


def test_an_empty_token_in_the_config_is_refused_not_an_open_door(tmp_path):
    config = tmp_path / "broker.yml"
    config.write_text('auth:\n  tokens: ["tok1", " "]\n')
    with pytest.raises(ConfigError, match="empty token"):
        load_settings(config, environ={})
