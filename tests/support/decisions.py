"""A broker app whose decision log is on but whose metrics come from the embedded snapshot, so
unit tests see the decisions it buffers without an InfluxDB (nothing is written: the writer
waits an hour before its first write and gives up at once at shutdown)."""

from __future__ import annotations

from broker.app import create_app
from broker.config import DEFAULT_CONFIG, load_settings
from broker.demo import free_port
from broker.metrics.cache import MetricsCache
from broker.metrics.snapshot import SnapshotSource
from broker.ranking.derived import derive
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
