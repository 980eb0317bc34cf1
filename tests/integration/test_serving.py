"""Real uvicorn processes: the developer workflow (`uvicorn broker.asgi:app --reload`), serving
under a path prefix behind a proxy (uvicorn's root_path), several workers."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from broker import __version__
from broker.demo import EXAMPLES, serving
from tests.support.live_broker import SITES, TOKEN, write_network

pytestmark = pytest.mark.integration


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPV_BROKER_")}
    return {**env, **extra}


def uvicorn(*args: str):
    return lambda port: ["uvicorn", "broker.asgi:app", "--port", str(port), *args]


def test_uvicorn_reload_serves_the_demo_network_with_examples_in_swagger_ui():
    with serving(uvicorn("--reload", "--log-level", "warning"), clean_env()) as (base, health):
        assert health["status"] == "ok"
        assert health["metrics"]["source"].startswith("snapshot")
        assert "swagger-ui" in httpx.get(f"{base}/docs").text
        schema = httpx.get(f"{base}/openapi.json").json()
        body = schema["paths"]["/process_data"]["post"]["requestBody"]["content"]
        examples = body["application/json"]["examples"]
        assert set(examples) == {p.stem for p in EXAMPLES.glob("*.json")}
        for example in examples.values():  # what "Try it out" sends is answered
            answer = httpx.post(f"{base}/process_data", json=example["value"]).json()
            ids = [d["id"] for d in example["value"]["destinations"]]
            assert sorted(answer["sorted_destinations"]) == sorted(ids)
        assert httpx.get(f"{base}/version").json() == {"version": __version__}


def test_uvicorn_app_reads_the_config_named_by_the_environment(tmp_path):
    config = write_network(tmp_path)
    env = clean_env(TPV_BROKER_CONFIG=str(config))
    with serving(uvicorn("--log-level", "warning"), env) as (base, _health):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        destinations = httpx.get(f"{base}/destinations", headers=headers).json()
        assert set(destinations["destinations"]) == set(SITES)
        assert httpx.get(f"{base}/destinations").status_code == 401  # its tokens apply


def test_a_bad_config_named_by_the_environment_exits_with_its_message(tmp_path):
    path = tmp_path / "broker.yml"
    path.write_text("metrics: {source: prometheus}\n")
    with (
        pytest.raises(Exception, match=r"tpv-broker: invalid config .*metrics\.source"),
        serving(uvicorn(), clean_env(TPV_BROKER_CONFIG=str(path)), timeout_s=15),
    ):
        pass


def test_served_under_a_prefix_as_nginx_forwards_it(tmp_path):
    config = write_network(tmp_path, overrides={"server": {"root_path": "/tpv-broker"}})
    serve = lambda port: ["broker.cli", "serve", "--config", str(config), "--port", str(port)]  # noqa: E731
    with serving(serve, clean_env()) as (base, health):
        assert health["status"] == "ok"  # /health stays open under the prefix
        # nginx: `location /tpv-broker/ { proxy_pass http://127.0.0.1:8080/; ... }` strips the
        # prefix and says which it was
        forwarded = {"X-Forwarded-Prefix": "/tpv-broker", "Authorization": f"Bearer {TOKEN}"}
        request = json.loads((EXAMPLES / "fastqc-small-input.json").read_text())
        request["destinations"] = [{"id": d} for d in SITES]
        answer = httpx.post(f"{base}/process_data", json=request, headers=forwarded)
        assert answer.status_code == 200
        assert sorted(answer.json()["sorted_destinations"]) == sorted(SITES)
        assert httpx.post(f"{base}/process_data", json=request).status_code == 401
        # the pages a browser gets through the proxy point back under the prefix
        docs = httpx.get(f"{base}/docs", headers=forwarded).text
        assert "'/tpv-broker/openapi.json'" in docs or '"/tpv-broker/openapi.json"' in docs
        schema = httpx.get(f"{base}/openapi.json", headers=forwarded).json()
        assert schema["servers"] == [{"url": "/tpv-broker"}]
        assert httpx.get(f"{base}/version").json() == {"version": __version__}


def test_several_workers_serve_one_port(tmp_path):
    # uvicorn starts workers only from an import string: broker.asgi:app, on the same config
    config = write_network(tmp_path, overrides={"server": {"workers": 2}})
    serve = lambda port: ["broker.cli", "serve", "--config", str(config), "--port", str(port)]  # noqa: E731
    # each worker imports the broker on its own: slow on a loaded machine
    with serving(serve, clean_env(), timeout_s=180) as (base, health):
        assert health["status"] == "ok"
        for _ in range(20):  # a new connection each time: either worker answers alike
            answer = httpx.get(f"{base}/destinations", headers={"Authorization": f"Bearer {TOKEN}"})
            assert set(answer.json()["destinations"]) == set(SITES)
