"""The HTTP API through FastAPI's test client, on the embedded demo network."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.config import load_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "requests"


@pytest.fixture
def client():
    with TestClient(create_app(load_settings(environ={}))) as c:
        yield c


def example(name):
    return json.loads((EXAMPLES / name).read_text())


def test_process_data_is_a_permutation_without_explanation_by_default(client):
    body = example("bwa-mem-data-in-bari.json")
    r = client.post("/process_data", json=body)
    assert r.status_code == 200
    answer = r.json()
    assert set(answer) == {"sorted_destinations"}
    assert sorted(answer["sorted_destinations"]) == sorted(d["id"] for d in body["destinations"])


def test_explain_gives_every_term_per_destination(client):
    r = client.post("/process_data?explain=true", json=example("bwa-mem-data-in-bari.json"))
    exp = r.json()["explanation"]
    assert exp["source"].startswith("snapshot:")
    first = exp["destinations"][0]
    for key in (
        "transfer_s",
        "wait_s",
        "run_s",
        "p_success",
        "expected_s",
        "metric_ages",
        "reason",
    ):
        assert key in first
    # 36 GB of input sit in Bari: only a destination that runs the tool faster may come first
    rows = exp["destinations"]
    bari = next(i for i, d in enumerate(rows) if d["id"] == "pulsar_it_bari")
    assert bari <= 1 and rows[bari]["transfer_s"] < 5
    assert all(d["run_s"] < rows[bari]["run_s"] for d in rows[:bari])
    states = {d["id"]: d["state"] for d in exp["destinations"]}
    assert states["pulsar_gr_heraklion"] == "stale"  # silent for two hours in the snapshot
    assert states["pulsar_fi_espoo"] == "stale"  # never reported
    assert [d["rank"] for d in exp["destinations"]] == list(range(1, 13))


def test_unknown_destination_and_object_store_are_ranked_not_refused(client):
    r = client.post("/process_data?explain=true", json=example("new-tool-unknown-site.json"))
    assert r.status_code == 200
    assert "pulsar_ch_newsite" in r.json()["sorted_destinations"]


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda b: b["datasets"]["201"].update(size=-1), "size"),
        (lambda b: b["job_info"].update(cores=-2), "cores"),
        (lambda b: b["job_info"].update(mem="lots"), "mem"),
        (lambda b: b.update(destinations=[]), "destinations"),
        (lambda b: b.pop("destinations"), "destinations"),
        (lambda b: b["destinations"].append({"id": b["destinations"][0]["id"]}), "duplicate"),
        (lambda b: b["destinations"][0].pop("id"), "id"),
    ],
)
def test_bad_requests_get_422_naming_the_field(client, mutate, field):
    body = example("bwa-mem-data-in-bari.json")
    mutate(body)
    r = client.post("/process_data", json=body)
    assert r.status_code == 422
    assert field in json.dumps(r.json())


def test_body_that_is_not_json_is_a_422(client):
    r = client.post(
        "/process_data", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


def _process_data(*messages):
    """What /process_data sends back when the request arrives as these ASGI messages."""
    import asyncio

    from broker.ranking.routes import ProcessData

    app = create_app(load_settings(environ={}))
    scope = {"type": "http", "method": "POST", "path": "/process_data", "app": app,
             "query_string": b"", "headers": []}  # fmt: skip
    incoming, sent = iter(messages), []

    async def receive():
        return next(incoming)

    async def send(message):
        sent.append(message)

    asyncio.run(ProcessData()(scope, receive, send))
    return sent


def test_body_in_several_messages_is_read_whole():
    body = example("fastqc-small-input.json")
    raw = json.dumps(body).encode()
    parts = [raw[i : i + 100] for i in range(0, len(raw), 100)]
    assert len(parts) > 2
    sent = _process_data(
        *({"type": "http.request", "body": part, "more_body": True} for part in parts[:-1]),
        {"type": "http.request", "body": parts[-1], "more_body": False},
    )
    assert sent[0]["status"] == 200
    answer = json.loads(sent[1]["body"])
    assert sorted(answer["sorted_destinations"]) == sorted(d["id"] for d in body["destinations"])


def test_client_gone_before_the_body_ends_gets_no_answer():
    sent = _process_data(
        {"type": "http.request", "body": b'{"destinations": [', "more_body": True},
        {"type": "http.disconnect"},
    )
    assert sent == []


def test_null_gpus_and_mem_from_tpv_mean_not_asked(client):
    body = example("fastqc-small-input.json")
    body["job_info"].update(gpus=None, mem=None)
    assert client.post("/process_data", json=body).status_code == 200


def test_health_and_destinations(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["metrics"]["sites"] == 11
    dests = client.get("/destinations").json()["destinations"]
    assert dests["pulsar_de_freiburg"]["state"] == "fresh"
    assert dests["pulsar_gr_heraklion"]["state"] == "stale"
    assert dests["pulsar_fi_espoo"]["state"] == "no_data"
    assert dests["pulsar_de_freiburg"]["cluster_usage"]["cpus"] == 2048
    carbon = dests["pulsar_de_freiburg"]["carbon_intensity"]
    assert (carbon["g_per_kwh"], carbon["current"]) == (380, True)
    assert dests["pulsar_gr_heraklion"]["carbon_intensity"]["current"] is False  # 2 h 20 min
    assert dests["pulsar_fi_espoo"]["carbon_intensity"] is None


def test_explain_flag_is_read_like_any_boolean_query_parameter(client):
    body = example("fastqc-small-input.json")
    assert "explanation" in client.post("/process_data?explain=1", json=body).json()
    assert "explanation" not in client.post("/process_data?explain=false", json=body).json()
    r = client.post("/process_data?explain=maybe", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "explain"]


def test_openapi_describes_process_data(client):
    post = client.get("/openapi.json").json()["paths"]["/process_data"]["post"]
    assert [p["name"] for p in post["parameters"]] == ["explain"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RankRequest"
    )
    assert "RankResponse" in str(post["responses"]["200"])


def test_a_bug_in_the_ranking_answers_tpv_order_not_500(client, monkeypatch):
    import broker.ranking.rank as rank_module

    def broken(*args, **kwargs):
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(rank_module, "score", broken)
    body = example("spades-large-memory.json")
    r = client.post("/process_data?explain=true", json=body)
    assert r.status_code == 200
    assert r.json()["sorted_destinations"] == body["preference"]
    assert r.json()["explanation"]["degraded"] is True


@pytest.mark.parametrize(
    "body, field",
    [
        (b'{"destinations": [{"id": "a"}], "datasets": {"x": {"size": NaN}}}', "size"),
        (b'{"destinations": [{"id": "a"}], "datasets": {"x": {"size": Infinity}}}', "size"),
        (b'{"destinations": [{"id": "a", "latitude": NaN}]}', "latitude"),
        (b'{"destinations": [{"id": "a"}], "job_info": {"mem": -Infinity}}', "mem"),
    ],
)
def test_non_finite_numbers_are_a_422_naming_the_field(client, body, field):
    r = client.post("/process_data", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == field


def test_the_configured_source_is_the_one_read_and_only_influxdb_records_routed_jobs():
    from broker.app import build_cache
    from broker.config import DEFAULT_CONFIG
    from broker.metrics.influx import InfluxSource
    from broker.metrics.snapshot import SnapshotSource

    snapshot = load_settings(DEFAULT_CONFIG)
    # a config that names the InfluxDB source keeps its snapshot path (e.g. for `rank`)
    influx = snapshot.model_copy(
        update={"metrics": snapshot.metrics.model_copy(update={"source": "influxdb"})}
    )
    assert influx.metrics.snapshot is not None
    assert isinstance(build_cache(snapshot).source, SnapshotSource)
    assert isinstance(build_cache(influx).source, InfluxSource)
    assert create_app(snapshot).state.routed is None
    assert create_app(influx).state.routed is not None


def test_version_is_the_package_version_and_open(secured, client):
    import tomllib

    from broker import __version__
    from tests.support.paths import ROOT

    assert client.get("/version").json() == {"version": __version__}
    assert secured.get("/version").status_code == 200  # no token needed, like /health
    # one home: pyproject.toml; the broker reports what is installed from it
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert __version__ == project["project"]["version"]


def test_health_shows_the_ledger_and_which_kind_it_is():
    from broker.config import DEFAULT_CONFIG
    from broker.ranking.shared_ledger import SharedLedger

    snapshot = load_settings(DEFAULT_CONFIG)
    with TestClient(create_app(snapshot)) as c:
        assert c.get("/health").json()["ledger"] is None  # a snapshot routes nothing
    influx = snapshot.model_copy(
        update={"metrics": snapshot.metrics.model_copy(update={"source": "influxdb"})}
    )
    app = create_app(influx)
    app.state.routed.add("freiburg", 1e9, 0.0, cores=1, mem_mb=1024, gpus=0)
    described = app.state.routed.describe(1e9)
    assert described == {"shared": "process", "jobs_in_flight": 1, "error": None}
    shared = influx.model_copy(
        update={"ledger": influx.ledger.model_copy(update={"redis_url": "redis://:pw@h:1/0"})}
    )
    ledger = create_app(shared).state.routed
    assert isinstance(ledger, SharedLedger)
    assert ledger.shown_url == "redis://***@h:1/0"  # never the password
