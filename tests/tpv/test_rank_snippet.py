"""The shipped rank snippet inside the real TPV 3.3 and Galaxy libraries, against a live broker.

Every job is routed by `tpv.rules.gateway.map_tool_to_destination` (Galaxy's call path) with the
administrator's existing config (fixtures/tpv-base.yml) followed by the fragment rendered from
roles/tpv_broker_rank with its defaults (only URL, token and, where said, timeout changed).
Without the broker TPV routes a pulsar job to ghent, then freiburg, then bari (tag score), so a
broker-driven answer is always visible as a different first choice.
"""

from __future__ import annotations

import pytest

from broker.demo import free_port
from tests.support.live_broker import SITES, TOKEN
from tests.support.paths import TPV_FIXTURES
from tests.support.real_tpv import BWA, GIB, GPU_TOOL, TPV_ORDER, TPV_SCORES

BASE = str(TPV_FIXTURES / "tpv-base.yml")
DATA_IN_BARI = [[20 * GIB, "os_bari"]]


def route(tpv, *configs, tool=BWA, datasets=DATA_IN_BARI, job_id=None):
    answer = tpv.route(
        configs=[BASE, *map(str, configs)], tool=tool, datasets=datasets, job_id=job_id
    )
    assert answer["error"] is None, answer
    # Whatever happens, every candidate is still there for TPV to try, none twice.
    assert sorted(answer["ranking"]) == sorted(TPV_ORDER), answer
    assert answer["destination"] == answer["ranking"][0], answer
    return answer


def warnings_of(answer):
    return [r["message"] for r in answer["log"] if r["level"] in ("WARNING", "ERROR")]


def live_fragment(fragments, broker):
    return fragments(
        "live", tpv_broker_rank_url=f"{broker.url}/process_data", tpv_broker_rank_token=TOKEN
    )


def fault_fragment(fragments, fault_server, mode, **overrides):
    url = f"{fault_server.url}/{mode}/process_data"
    name = mode + "".join(f"-{v}" for v in overrides.values())
    return fragments(name, tpv_broker_rank_url=url, tpv_broker_rank_token=TOKEN, **overrides)


def broker_request(store, tool_id=BWA, mem=30, cores=16, size=20 * GIB):
    """The request the snippet sends for one input of `size` in `store` (for direct comparison)."""
    return {
        "destinations": [
            {"id": d, "context": {"latitude": SITES[d][1], "longitude": SITES[d][2]}}
            for d in TPV_ORDER
        ],
        "datasets": {"1": {"object_store_id": store, "size": size}},
        "job_info": {"tool_id": tool_id, "mem": mem, "cores": cores, "gpus": None},
        "preference": TPV_ORDER,
        "tpv_scores": TPV_SCORES,
    }


def test_without_the_broker_tpv_routes_by_its_tags(tpv):
    answer = route(tpv)
    assert answer["ranking"] == TPV_ORDER
    assert answer["destination"] == "pulsar_be_ghent"


@pytest.mark.parametrize(
    "store, expected", [("os_bari", "pulsar_it_bari"), ("os_freiburg", "pulsar_de_freiburg")]
)
def test_routing_follows_the_broker(tpv, broker, fragments, store, expected):
    # 60 GiB: staging it elsewhere costs more than the tags' preference for ghent (one score
    # level, ranking.preference_level_s)
    answer = route(tpv, live_fragment(fragments, broker), datasets=[[60 * GIB, store]])
    assert answer["ranking"] == broker.rank(broker_request(store, size=60 * GIB))
    assert answer["destination"] == expected != TPV_ORDER[0]
    assert warnings_of(answer) == []


def test_routing_changes_when_the_metrics_change(tpv, broker, fragments, busy):
    live = live_fragment(fragments, broker)
    assert route(tpv, live)["destination"] == "pulsar_it_bari"  # the data is there
    busy("pulsar_it_bari")  # bari's pool fills up and 3000 jobs queue there
    answer = route(tpv, live)
    assert answer["ranking"][-1] == "pulsar_it_bari"  # now the slowest: behind 3000 jobs
    assert answer["ranking"] == broker.rank(broker_request("os_bari"))
    assert warnings_of(answer) == []


def test_request_carries_what_tpv_knows(tpv, fault_server, fragments):
    """Token, candidates with coordinates, datasets, resources, TPV's order, the job's id, the
    mode and the fallback's order; answer followed."""
    fragment = fault_fragment(fragments, fault_server, "reverse")
    datasets = [[20 * GIB, "os_bari"], [3 * GIB, None]]
    answer = route(tpv, fragment, datasets=datasets, job_id=31337)
    assert answer["ranking"] == TPV_ORDER[::-1]  # what this stand-in answered
    assert warnings_of(answer) == []
    sent = fault_server.requests[-1]
    assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}"
    body = sent["body"]
    assert body["destinations"] == [
        {"id": d, "context": {"latitude": SITES[d][1], "longitude": SITES[d][2]}}
        for d in SITES  # TPV hands the candidates over in config order
    ]
    assert sorted(body["datasets"].values(), key=lambda d: d["size"]) == [
        {"object_store_id": None, "size": 3 * GIB},
        {"object_store_id": "os_bari", "size": 20 * GIB},
    ]
    assert body["job_info"] == {"tool_id": BWA, "mem": 30, "cores": 16, "gpus": None}
    assert body["preference"] == TPV_ORDER
    assert body["tpv_scores"] == TPV_SCORES  # TPV's own destination.score(entity)
    assert "objectstores" not in body  # the broker has them in its own config
    assert body["job_id"] == 31337
    assert body["mode"] == "enforce"  # the role's default
    assert body["fallback_order"] == TPV_ORDER  # no fallback expression set: TPV's own order

    route(tpv, fragment, tool=GPU_TOOL, datasets=[])
    body = fault_server.requests[-1]["body"]
    assert body["job_info"] == {"tool_id": GPU_TOOL, "mem": 16, "cores": 4, "gpus": 1}
    assert body["datasets"] == {}
    # TPV's mock Galaxy numbers the jobs it is not given an id for, as Galaxy's database does.
    assert isinstance(body["job_id"], int) and body["job_id"] != 31337


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("stopped", "ConnectionRefusedError"),
        ("500", "HTTP 500"),
        ("garbage", "malformed answer: not JSON"),
        ("shape", "not a list of ids"),
        ("unknown", "not candidates: ['elsewhere']"),
        ("wrong-token", "HTTP 401"),
    ],
)
def test_broker_failure_routes_to_tpvs_own_first_choice(
    tpv, broker, fault_server, fragments, mode, reason
):
    if mode == "stopped":  # nothing listens there
        url = f"http://127.0.0.1:{free_port()}/process_data"
        fragment = fragments(mode, tpv_broker_rank_url=url, tpv_broker_rank_token=TOKEN)
    elif mode == "wrong-token":  # the live broker refuses it
        url = f"{broker.url}/process_data"
        fragment = fragments(mode, tpv_broker_rank_url=url, tpv_broker_rank_token="not-it")
    else:
        fragment = fault_fragment(fragments, fault_server, mode)
    answer = route(tpv, fragment)
    assert answer["ranking"] == TPV_ORDER
    assert answer["destination"] == "pulsar_be_ghent"
    (record,) = answer["log"]  # exactly one line, and a warning
    assert record["level"] == "WARNING"
    assert reason in record["message"] and "\n" not in record["message"]
    assert answer["elapsed_ms"][0] < 1500  # failed fast, nowhere near the 2 s timeout


@pytest.mark.parametrize("timeout_s", [None, 0.5])
def test_hanging_broker_costs_the_timeout_then_tpvs_order(tpv, fault_server, fragments, timeout_s):
    overrides = {} if timeout_s is None else {"tpv_broker_rank_timeout_s": timeout_s}
    expected_s = timeout_s or 2.0  # the role's default
    answer = route(tpv, fault_fragment(fragments, fault_server, "hang", **overrides))
    assert answer["ranking"] == TPV_ORDER
    (line,) = warnings_of(answer)
    assert "TimeoutError" in line
    elapsed_s = answer["elapsed_ms"][0] / 1000
    assert expected_s * 0.95 <= elapsed_s < expected_s + 1.5


def test_ids_the_broker_left_out_stay_at_the_end_in_tpvs_order(tpv, fault_server, fragments):
    answer = route(tpv, fault_fragment(fragments, fault_server, "partial"))
    # The stand-in answers only bari (TPV's last); ghent and freiburg follow in TPV's order.
    assert answer["ranking"] == ["pulsar_it_bari", "pulsar_be_ghent", "pulsar_de_freiburg"]
    (line,) = warnings_of(answer)
    assert "left out ['pulsar_be_ghent', 'pulsar_de_freiburg']" in line
