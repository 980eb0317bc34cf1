"""gxadmin's recorded iquery output -> Telegraf -> real InfluxDB -> the broker's InfluxSource,
including what a drained queue looks like (gxadmin writes no row for it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from broker.config import InfluxSettings
from broker.metrics.influx import InfluxSource
from tests.support.telegraf import telegraf_write

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gxadmin"
TOOL = "toolshed.g2.bx.psu.edu/repos/iuc/metaphlan/metaphlan/3.0.9+galaxy0"


def fetch(influxdb):
    return InfluxSource(InfluxSettings(url=influxdb.url, database=influxdb.database)).fetch()


def test_destination_queue_run_time_through_influxdb(influxdb):
    text = (FIXTURES / "destination-queue-run-time.iquery.txt").read_text()
    assert telegraf_write(influxdb, text) == 2
    # gxadmin prints bare numbers: InfluxDB stores them as floats, the view reads them as such
    stats = fetch(influxdb).runtimes[("condor_tpv", TOOL)]
    assert stats.count == 16
    assert (stats.median_queue, stats.median_run) == (76.5, 377.5)
    assert (stats.perc_95_queue, stats.perc_95_run) == (470, 3093.25)


def test_queue_by_destination_and_a_queue_that_drained(influxdb):
    now = time.time_ns()
    minute_ago = now - 60 * 10**9
    telegraf_write(
        influxdb, (FIXTURES / "queue-by-destination.iquery.txt").read_text(), now_ns=minute_ago
    )
    view = fetch(influxdb)
    assert view.queues["multicore"]["queued"].count == 16
    assert view.queues["normal"]["running"].count == 128

    telegraf_write(
        influxdb, (FIXTURES / "queue-by-destination.drained.iquery.txt").read_text(), now_ns=now
    )
    view = fetch(influxdb)
    multicore = view.queues["multicore"]
    assert multicore["running"].count == 80 and multicore["running"].time_s == now / 1e9
    # gxadmin wrote no `queued` row: the last one (16 jobs, a minute old) is still the newest.
    # Only its age tells it apart: it is older than the destination's newest queue point, which
    # means "0 queued since then", and past the staleness window it is not current at all.
    assert multicore["queued"].count == 16
    assert multicore["queued"].time_s == pytest.approx(minute_ago / 1e9)
    assert multicore["queued"].time_s < multicore["running"].time_s


def test_the_docs_example_name_is_stored_but_never_read(influxdb):
    """The README's pre-#52 measurement lands in InfluxDB yet no contract series sees it."""
    telegraf_write(influxdb, (FIXTURES / "queue-by-destination.docs-example.txt").read_text())
    stored = influxdb.query('SELECT count(*) FROM "queue-summary-by-destination"')
    assert stored["results"][0]["series"][0]["values"][0][1] == 3
    assert fetch(influxdb).queues == {}
