"""The producer -> consumer message (schema 1) and its line of line protocol."""

from __future__ import annotations

import json

import pytest

from collectors.schema import ClusterState, MessageError, parse_message
from metric_contract.lineprotocol import parse_lines

NOW = 1_760_000_000.0


def message(**changes) -> dict:
    base = {
        "schema": 1,
        "site": "pulsar_eu01",
        "collected_at": NOW - 30,
        "totals": {
            "cpus": 64,
            "cpus_free": 24,
            "memory_mb": 256000,
            "memory_mb_free": 96000,
            "gpus": 2,
            "gpus_free": 1,
            "jobs_idle": 3,
            "jobs_running": 10,
            "jobs_held": 1,
        },
        "largest_free_slot": {"cpus": 16, "memory_mb": 64000, "gpus": 1},
    }
    for path, value in changes.items():
        node = base
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return base


DELETE = object()


def encode(data) -> bytes:
    return json.dumps(data).encode()


def test_valid_message_round_trips():
    state = parse_message(encode(message()), now=NOW)
    assert state.site == "pulsar_eu01"
    assert state.totals["cpus_free"] == 24
    assert state.largest_free_slot == {"cpus": 16, "memory_mb": 64000, "gpus": 1}
    assert parse_message(state.to_json(), now=NOW) == state


def test_line_carries_every_contract_field_as_integer_and_collected_at_as_time():
    state = parse_message(encode(message()), now=NOW)
    line = state.to_line()
    (point,) = parse_lines([line])
    assert point.measurement == "htcondor_cluster_usage"
    assert point.tags == {"site": "pulsar_eu01"}
    assert point.time_ns == int((NOW - 30) * 1e9)
    expected = {
        "cpus",
        "cpus_free",
        "memory_mb",
        "memory_mb_free",
        "gpus",
        "gpus_free",
        "jobs_idle",
        "jobs_running",
        "jobs_held",
        "largest_free_cpus",
        "largest_free_memory_mb",
    }
    assert expected <= set(point.fields)
    assert point.fields["largest_free_memory_mb"] == 64000
    # one field type for ever: integers (InfluxDB refuses a float into an integer field)
    assert all(isinstance(v, int) for v in point.fields.values())
    assert " cpus=64i," in line


@pytest.mark.parametrize(
    "site",
    ["pulsar eu 01", "pulsar,eu", "a=b", 'quoted "site"', 'mixed, a=b "c" d', "ünïcode-站点"],
)
def test_site_tag_escaping_round_trips(site):
    state = ClusterState(site, NOW, message()["totals"], message()["largest_free_slot"])
    (point,) = parse_lines([state.to_line()])
    assert point.tags["site"] == site
    assert point.fields["cpus"] == 64


def test_fractional_memory_is_rounded_not_refused():
    state = parse_message(encode(message(totals__memory_mb_free=95999.6)), now=NOW)
    assert state.totals["memory_mb_free"] == 96000


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (encode(message(schema=2)), "unsupported schema 2"),
        (encode(message(schema=True)), "unsupported schema"),
        (encode(message(schema=DELETE)), "missing field 'schema'"),
        (encode(message(site=DELETE)), "missing field 'site'"),
        (encode(message(totals__cpus_free=DELETE)), "totals.cpus_free"),
        (encode(message(largest_free_slot__gpus=DELETE)), "largest_free_slot.gpus"),
        (encode(message(totals=[1, 2])), "must be objects"),
        (encode(message(site="")), "non-empty"),
        (encode(message(site=7)), "non-empty string"),
        (encode(message(site="evil\nmeasurement x=1")), "a control character (U+000A)"),
        (encode(message(site="trailing\\")), "backslash"),
        (encode(message(site="x" * 129)), "longer than"),
        (encode(message(collected_at="yesterday")), "unix seconds"),
        (encode(message(collected_at=12)), "plausible"),
        (encode(message(collected_at=NOW + 3600)), "in the future"),
        (encode(message(totals__cpus=-4)), "negative"),
        (encode(message(totals__jobs_idle="3")), "must be a number"),
        (encode(message(totals__jobs_idle=True)), "must be a number"),
        (encode(message()).replace(b'"cpus": 64', b'"cpus": NaN'), "not finite"),
        (encode(message(totals__cpus_free=65)), "cpus_free (65) > totals.cpus"),
        (encode(message(totals__memory_mb=10**13, totals__memory_mb_free=0)), "beyond"),
        (encode(message(largest_free_slot__cpus=25)), "exceeds totals.cpus_free"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(body, reason):
    with pytest.raises(MessageError) as info:
        parse_message(body, now=NOW)
    assert reason in str(info.value)
