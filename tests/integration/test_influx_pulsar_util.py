"""ansible-pulsar-util's shapes and several Galaxy servers through a real InfluxDB 1.x: both
pulsar-util shapes and this suite's in one measurement (a field and a tag both named
`destination_id`, as a migration leaves them), read back by the InfluxDB source."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.metrics.influx import InfluxSource
from broker.metrics.pulsar_util import CARBON_SHAPE, HISTOGRAM_SHAPE, TOTALS_SHAPE
from broker.metrics.series import OWN_SHAPE
from metric_contract.lineprotocol import Point, format_point, parse_text
from tests.support.influx_network import REQUEST, settings_for, usage_line
from tests.support.paths import ROOT

pytestmark = pytest.mark.integration

FIXTURES = ROOT / "tests" / "fixtures" / "pulsar_util"
T = 1764590400  # the fixtures' newest Telegraf timestamp


def restamped(name: str, now: float, fix_tags: bool = False, spread: bool = False) -> list[str]:
    """A fixture's lines moved to `now` (timestamps and `querytime`).

    Lines of one consumer run that share a series and a timestamp are one point to InfluxDB
    (merged field by field): pulsar-util's totals lines of all sites share one series, its
    histogram lines of one site one series too (the producer tags every line of a run with the
    last slot's shape). `spread` gives each line its own nanosecond, `fix_tags` each histogram
    line the tag of its own shape, so that nothing is merged."""
    shift = now - T
    out = []
    for i, p in enumerate(parse_text((FIXTURES / name).read_text())):
        fields = dict(p.fields)
        if "querytime" in fields:
            fields["querytime"] = float(fields["querytime"]) + shift
        tags = dict(p.tags)
        if fix_tags and "unclaimed_tag" in tags:
            tags["unclaimed_tag"] = f"{fields['unclaimed_cpus']:g}c_{fields['unclaimed_memory']:g}m"
        ns = (p.time_ns or 0) + int(shift * 1e9) + (i if spread else 0)
        moved = replace(p, tags=tags, fields=fields, time_ns=ns)
        out.append(_line(moved))
    return out


def _line(p: Point) -> str:
    return format_point(p.measurement, p.tags, p.fields, p.time_ns)


def test_all_three_shapes_in_one_measurement_read_as_from_the_snapshot(influxdb):
    now = time.time()
    influxdb.write(restamped("mixed.lp", now, fix_tags=True, spread=True))
    view = InfluxSource.of(settings_for(influxdb).metrics).fetch()
    small, big = view.cluster["pulsar_small"], view.cluster["pulsar_big"]
    assert small.shape == OWN_SHAPE and small.cpus == 512  # the suite's shape wins
    assert big.shape == HISTOGRAM_SHAPE
    assert (big.cpus_free, big.largest_free_cpus, big.largest_free_memory_mb) == (34, 32, 131072)
    de = view.cluster["pulsar_de02"]
    assert de.shape == TOTALS_SHAPE
    assert (de.cpus, de.cpus_free, de.memory_mb_free, de.jobs_running) == (256, 6, 24000, 37)
    assert de.time_s == pytest.approx(now - 1.25, abs=0.01)  # querytime
    assert view.cluster["pulsar_cz01"].gpus == 2
    assert view.cluster["pulsar_it01"].time_s == pytest.approx(now - 2400, abs=0.01)


def test_lines_of_one_run_in_one_series_are_one_point_in_influxdb(influxdb):
    """What InfluxDB keeps of a run whose lines share series and timestamp: the last line's
    fields. The broker reads a histogram line's shape from its fields (the tag names another);
    of the totals lines, the last site's figures survive (the offline line's status with them:
    skipped), the others' sites keep their older reports."""
    influxdb.write(restamped("histogram.lp", time.time()))
    influxdb.write(restamped("totals.lp", time.time()))
    view = InfluxSource.of(settings_for(influxdb).metrics).fetch()
    big = view.cluster["pulsar_big"]
    assert (big.cpus_free, big.largest_free_cpus) == (2, 1)  # the 2 x 1-core line survived
    assert view.cluster["pulsar_de02"].cpus_free == 56  # its report of a minute before
    assert "pulsar_cz01" not in view.cluster  # merged into the offline line of pulsar_it01


def test_the_broker_routes_the_big_job_to_the_histograms_larger_slot(influxdb):
    influxdb.write(restamped("histogram.lp", time.time(), fix_tags=True))
    settings = settings_for(influxdb)
    settings.destinations = {}
    body = {
        "destinations": [{"id": "pulsar_small"}, {"id": "pulsar_big"}],
        "job_info": {"tool_id": "tool", "cores": 16, "mem": 64},
    }
    with TestClient(create_app(settings)) as client:
        answer = client.post("/process_data?explain=true", json=body).json()
    assert answer["sorted_destinations"] == ["pulsar_big", "pulsar_small"]
    assert answer["explanation"]["destinations"][0]["state"] == "fresh"


def test_two_galaxies_queue_rows_are_summed_through_influxdb(influxdb):
    now = time.time()

    def queued(count, host, t):
        tags = {"destination_id": "dest_a", "state": "queued", "host": host}
        return format_point("queue_by_destination", tags, {"count": count}, int(t * 1e9))

    influxdb.write(
        [
            queued(3, "galaxy-eu", now - 70),
            queued(7, "galaxy-eu", now - 10),
            queued(5, "galaxy-fr", now - 30),
        ]
    )
    view = InfluxSource.of(settings_for(influxdb).metrics).fetch()
    assert view.queues["dest_a"]["queued"].count == 12
    assert view.queue_row("dest_a").count == 12


def test_carbon_intensities_in_both_shapes_are_read_back_from_influxdb(influxdb):
    """pulsar-util's carbon lines alone first (the measurement has no `site` tag at all then),
    then this suite's shape for another site beside them."""
    now = time.time()
    influxdb.write(restamped("carbon.lp", now))
    view = InfluxSource.of(settings_for(influxdb).metrics).fetch()
    assert {s: c.g_per_kwh for s, c in view.carbon.items()} == {
        "pulsar_de02": 412,
        "pulsar_fr01": 38,
        # pulsar_pl01's line is 2 h old: past the carbon lookback (metrics.carbon_staleness_s)
    }
    assert view.carbon["pulsar_de02"].shape == CARBON_SHAPE
    own = Point("pulsar_carbon_intensity", {"site": "pulsar_se01"}, {"carbon_intensity": 21.0})
    influxdb.write([_line(replace(own, time_ns=int(now * 1e9)))])
    view = InfluxSource.of(settings_for(influxdb).metrics).fetch()
    assert view.carbon["pulsar_se01"].shape == OWN_SHAPE
    assert view.carbon["pulsar_se01"].g_per_kwh == 21
    assert view.carbon["pulsar_fr01"].g_per_kwh == 38


def test_carbon_lines_of_one_run_are_one_point_in_influxdb(influxdb):
    """pulsar-util's consumer prints every site's carbon line in one run, with no tag and
    Telegraf's one timestamp: InfluxDB keeps the last line's fields, so one site per run."""
    now = time.time()
    lines = [
        _line(replace(p, time_ns=int(now * 1e9)))
        for p in parse_text((FIXTURES / "carbon.lp").read_text())
    ]
    influxdb.write(lines)
    view = InfluxSource.of(settings_for(influxdb).metrics).fetch()
    assert {s: c.g_per_kwh for s, c in view.carbon.items()} == {"pulsar_pl01": 655}


def test_a_price_on_carbon_routes_to_the_cleaner_grid_through_influxdb(influxdb):
    now = time.time()
    influxdb.write([usage_line("site_a", free=32, t_s=now), usage_line("site_b", free=32, t_s=now)])
    carbon = [("site_a", 600.0), ("site_b", 40.0)]
    influxdb.write(
        [
            _line(
                Point(
                    "pulsar_carbon_intensity",
                    {},
                    {"carbon_intensity": g, "destination_id": s},
                    int(now * 1e9) + i,
                )
            )
            for i, (s, g) in enumerate(carbon)
        ]
    )
    answers = {}
    for rate in (0, 100_000):
        settings = settings_for(influxdb)
        settings.ranking.carbon_s_per_kg = rate
        settings.ranking.preference_step_s = 0
        with TestClient(create_app(settings)) as client:
            answers[rate] = client.post("/process_data?explain=true", json=REQUEST).json()
    assert answers[0]["sorted_destinations"] == ["dest_a", "dest_b"]  # alike: TPV's order
    assert answers[100_000]["sorted_destinations"] == ["dest_b", "dest_a"]
    rows = [{d["id"]: d for d in answers[r]["explanation"]["destinations"]} for r in answers]
    unpriced, priced = rows
    # 8 cores x 900 s (default_run_s) x 10 W x 600 g/kWh = 12 g, priced at 100 s/g or not
    assert priced["dest_a"]["carbon_kg"] == unpriced["dest_a"]["carbon_kg"] == 0.012
    assert (priced["dest_a"]["carbon_s"], unpriced["dest_a"]["carbon_s"]) == (1200, 0)
