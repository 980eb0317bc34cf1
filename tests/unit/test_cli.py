import json
from pathlib import Path

from fastapi.testclient import TestClient

from broker.app import create_app
from broker.cli import main
from broker.config import load_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "requests"


def test_rank_prints_what_the_api_answers(capsys, monkeypatch):
    monkeypatch.delenv("TPV_BROKER_CONFIG", raising=False)
    path = EXAMPLES / "spades-large-memory.json"
    assert main(["rank", str(path), "--explain"]) == 0
    printed = json.loads(capsys.readouterr().out)
    with TestClient(create_app(load_settings(environ={}))) as client:
        served = client.post("/process_data?explain=true", json=json.loads(path.read_text())).json()
    assert printed == served
    # the destination that fails SPAdes often loses its first place in TPV's preference
    exp = {d["id"]: d for d in printed["explanation"]["destinations"]}
    assert printed["sorted_destinations"][0] != "pulsar_it_bari"
    assert exp["pulsar_it_bari"]["p_success"] == min(d["p_success"] for d in exp.values())
    assert exp["pulsar_it_bari"]["rank"] > exp["pulsar_nl_amsterdam"]["rank"]


def test_rank_rejects_a_bad_request_with_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"destinations": [{"id": "a"}], "job_info": {"cores": -1}}))
    assert main(["rank", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "job_info.cores" in err and "Traceback" not in err


def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    conf = tmp_path / "c.yml"
    conf.write_text("metrics: {source: nope}\n")
    assert main(["--config", str(conf), "rank", str(EXAMPLES / "fastqc-small-input.json")]) == 2
    assert "metrics.source" in capsys.readouterr().err
    assert main(["rank", str(EXAMPLES / "fastqc-small-input.json"), "--config", str(conf)]) == 2
