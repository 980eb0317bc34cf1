"""A broker app whose decision log is on but whose metrics come from the embedded snapshot, so
unit tests see the decisions it buffers without an InfluxDB (nothing is written: the writer
waits an hour before its first write and gives up at once at shutdown)."""

from __future__ import annotations

import json

from broker.app import create_app
from broker.config import DEFAULT_CONFIG, load_settings
from broker.demo import free_port
from broker.metrics.cache import MetricsCache
from broker.metrics.snapshot import SnapshotSource
from broker.ranking.derived import derive
from metric_contract import measurements as mc
from metric_contract.lineprotocol import Point, parse_text


def logging_app(tmp_path, max_points: int = 500_000, config=DEFAULT_CONFIG, **decision_log):
    settings = load_settings(config, environ={"TPV_BROKER_STATE_DIR": str(tmp_path)})
    snapshot = settings.metrics.snapshot
    assert snapshot is not None
    settings.metrics.source = "influxdb"
    settings.metrics.influxdb.url = f"http://127.0.0.1:{free_port()}"  # nobody listens
    settings.decision_log = settings.decision_log.model_copy(
        update={"max_buffered_points": max_points, "flush_s": 3600, "shutdown_s": 0.5,
                **decision_log}
    )  # fmt: skip
    cache = MetricsCache(SnapshotSource(snapshot), lambda v: derive(v, settings), 3600)
    return create_app(settings, cache)


def points(text: str) -> list[Point]:
    return list(parse_text(text))


def decision_point(
    job_id: int,
    decision: str,
    time_ns: int,
    used: str,
    candidates: list[dict],
    tool_id: str = "bwa",
    mode: str = "enforce",
    chosen_by: str = "broker",
    attempt: int = 1,
) -> Point:
    """A `routing_decision` point as docs/metric-contract.md describes it, built from plain
    values (the broker's fast formatter needs its ranking's objects). `candidates`: in TPV's
    order, each with `destination_id`, `broker_rank` (0..n-1) and any of the predictions (None:
    null) and `metric_age_s`."""
    keys = {
        mc.CANDIDATE_TRANSFER_S: "transfer_s",
        mc.CANDIDATE_WAIT_S: "wait_s",
        mc.CANDIDATE_RUN_S: "run_s",
        mc.CANDIDATE_P_SUCCESS: "p_success",
    }
    chosen = next(c for c in candidates if c["destination_id"] == used)
    first = min(candidates, key=lambda c: c["broker_rank"])
    fields: dict = {
        mc.JOB_ID: job_id,
        mc.ATTEMPT: attempt,
        mc.DECISION: decision,
        mc.BROKER_RANK: chosen["broker_rank"],
        mc.BROKER_CHOICE: first["destination_id"],
        mc.CANDIDATES: json.dumps([c["destination_id"] for c in candidates]),
        mc.BROKER_ORDER: json.dumps(
            sorted(range(len(candidates)), key=lambda i: candidates[i]["broker_rank"])
        ),
    }
    for name in (mc.TRANSFER_S, mc.WAIT_S, mc.RUN_S, mc.P_SUCCESS, mc.METRIC_AGE_S):
        if chosen.get(name) is not None:
            fields[name] = float(chosen[name])
    for field_name, key in keys.items():
        if any(key in c for c in candidates):
            fields[field_name] = json.dumps([c.get(key) for c in candidates])
    if any("metric_age_s" in c for c in candidates):
        fields[mc.CANDIDATE_METRIC_TIME_S] = json.dumps(
            [None if c.get("metric_age_s") is None else time_ns / 1e9 - c["metric_age_s"]
             for c in candidates]
        )  # fmt: skip
    tags = {mc.DESTINATION_ID: used, mc.TOOL_ID: tool_id, mc.MODE: mode, mc.CHOSEN_BY: chosen_by}
    return Point(mc.DECISIONS, tags, fields, time_ns)
