"""ansible-pulsar-util's two shapes of `htcondor_cluster_usage`, read without a setting next to
this suite's own: from snapshot files in each shape (tests/fixtures/pulsar_util) and through
`tpv-broker rank`."""

from __future__ import annotations

import json

import pytest
import yaml
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.cli import main
from broker.config import Settings
from broker.metrics.pulsar_util import HISTOGRAM_SHAPE, TOTALS_SHAPE, number
from broker.metrics.series import OWN_SHAPE
from broker.metrics.snapshot import SnapshotSource
from broker.metrics.view import MetricsView
from metric_contract.lineprotocol import parse_lines
from metric_contract.pulsar_util import site_of
from tests.support.paths import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "pulsar_util"
T = 1764590400  # the fixtures' newest Telegraf timestamp


def snapshot(name: str) -> MetricsView:
    return SnapshotSource(FIXTURES / name).fetch()


def test_totals_line_maps_to_the_contracts_figures():
    view = snapshot("totals.lp")
    de = view.cluster["pulsar_de02"]
    assert (de.cpus, de.cpus_free, de.memory_mb, de.memory_mb_free) == (256, 6, 1024000, 24000)
    assert de.jobs_running == 37  # claimed_busy_slots
    assert de.time_s == 1764590398.75  # querytime: when HTCondor was asked, the newest line
    assert de.shape == TOTALS_SHAPE
    assert {"jobs_idle", "largest_free_cpus"} <= set(de.missing)
    assert de.largest_free_cpus == de.cpus_free  # the free totals stand in
    assert (view.cluster["pulsar_cz01"].gpus, view.cluster["pulsar_cz01"].gpus_free) == (2, 2)
    # the consumer's figureless offline line is no report: the last online one ages
    it = view.cluster["pulsar_it01"]
    assert it.cpus == 64 and it.time_s == 1764588000.0


def test_histogram_sums_the_newest_run_and_knows_the_largest_free_slot():
    view = snapshot("histogram.lp")
    small, big = view.cluster["pulsar_small"], view.cluster["pulsar_big"]
    assert small.cpus_free == 12 * 8 + 30 * 1
    assert small.memory_mb_free == 12 * 16384 + 30 * 2048
    assert (small.largest_free_cpus, small.largest_free_memory_mb) == (8, 16384)
    # big's 40 x 16-core line is from an older run: only the newest run counts
    assert big.cpus_free == 32 + 2
    assert (big.largest_free_cpus, big.largest_free_memory_mb) == (32, 131072)
    assert big.shape == HISTOGRAM_SHAPE and not big.totals_known
    assert big.free_fraction is None  # the pool's size is not known
    assert "jobs_idle" in big.missing and "gpus" in big.missing


def test_this_suites_shape_wins_for_a_site_that_reports_in_both():
    view = snapshot("mixed.lp")
    assert view.cluster["pulsar_small"].shape == OWN_SHAPE
    assert view.cluster["pulsar_small"].cpus == 512
    assert view.cluster["pulsar_big"].shape == HISTOGRAM_SHAPE
    assert view.cluster["pulsar_de02"].shape == TOTALS_SHAPE


def test_figures_written_as_strings_are_read_and_bad_ones_are_not_figures():
    line = (
        'htcondor_cluster_usage,classad=machine total_detected_cpus="16",unclaimed_cpus="4",'
        'total_memory="64000",unclaimed_memory="nope",destination_id="site_s" 1000000000000'
    )
    usage = MetricsView.from_points(parse_lines([line]), source="t").cluster["site_s"]
    assert (usage.cpus, usage.cpus_free, usage.memory_mb) == (16, 4, 64000)
    assert usage.memory_mb_free == 0 and "memory_mb_free" in usage.missing
    assert number(" 2.5 ") == 2.5 and number("inf") is None and number(True) is None


def test_destination_id_quotes_are_stripped_only_when_they_wrap_the_value():
    assert site_of('"pulsar_de02"') == "pulsar_de02"
    assert site_of("pulsar_de02") == "pulsar_de02"
    assert site_of('"') == '"'


def _rank(tmp_path, capsys, snapshot_name, destinations, job):
    config = tmp_path / "broker.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "metrics": {"source": "snapshot", "snapshot": str(FIXTURES / snapshot_name)},
                "destinations": destinations,
            }
        )
    )
    request = tmp_path / "request.json"
    ids = list(destinations)
    request.write_text(json.dumps({"destinations": [{"id": i} for i in ids], "job_info": job}))
    assert main(["rank", str(request), "--explain", "--config", str(config)]) == 0
    answer = json.loads(capsys.readouterr().out)
    rows = answer["explanation"]["destinations"]
    return answer["sorted_destinations"], {d["id"]: d for d in rows}


@pytest.mark.parametrize(
    ("snapshot_name", "small_job_first"),
    # in mixed.lp pulsar_small reports in this suite's shape too: 20 idle jobs, 4 cores free
    [("histogram.lp", "tpv_small"), ("mixed.lp", "tpv_big")],
)
def test_a_job_that_fits_only_the_larger_slot_goes_to_the_site_that_has_it(
    tmp_path, capsys, snapshot_name, small_job_first
):
    # TPV prefers pulsar_small; only pulsar_big has a free 32-core / 128 GB slot
    dests = {"tpv_small": {"site": "pulsar_small"}, "tpv_big": {"site": "pulsar_big"}}
    order, exp = _rank(tmp_path, capsys, snapshot_name, dests, {"cores": 16, "mem": 64})
    assert order == ["tpv_big", "tpv_small"]
    assert exp["tpv_big"]["state"] == "fresh"
    assert exp["tpv_big"]["terms"]["wait"].startswith("fits now (largest free slot 32 cores")
    assert "ansible-pulsar-util histogram: no cpus" in exp["tpv_big"]["terms"]["wait"]
    assert "pool size unknown" in exp["tpv_big"]["terms"]["wait"]
    # a small job fits a free slot at both (TPV's order kept) unless jobs queue at one
    order, _ = _rank(tmp_path, capsys, snapshot_name, dests, {"cores": 1, "mem": 1})
    assert order[0] == small_job_first


def test_totals_snapshot_gives_a_fresh_ranked_answer(tmp_path, capsys):
    dests = {
        "tpv_it01": {"site": "pulsar_it01"},
        "tpv_de02": {"site": "pulsar_de02"},
        "tpv_cz01": {"site": "pulsar_cz01"},
    }
    order, exp = _rank(tmp_path, capsys, "totals.lp", dests, {"cores": 8, "mem": 16})
    # de02 has 6 cores free, cz01 96; it01 went offline 40 minutes ago: stale, last
    assert order == ["tpv_cz01", "tpv_de02", "tpv_it01"]
    assert [exp[i]["state"] for i in order] == ["fresh", "fresh", "stale"]
    assert "no jobs_idle" in exp["tpv_cz01"]["terms"]["wait"]
    assert "jobs ahead from Galaxy's queue only" in exp["tpv_de02"]["terms"]["wait"]


def test_destinations_route_names_the_shape_and_what_it_lacks():
    settings = Settings.model_validate(
        {
            "metrics": {"source": "snapshot", "snapshot": str(FIXTURES / "mixed.lp")},
            "destinations": {
                "tpv_big": {"site": "pulsar_big"},
                "tpv_de02": {"site": "pulsar_de02"},
            },
        }
    )
    with TestClient(create_app(settings)) as client:
        answer = client.get("/destinations")
    assert answer.status_code == 200
    dests = answer.json()["destinations"]
    big = dests["tpv_big"]["cluster_usage"]
    assert big["shape"] == HISTOGRAM_SHAPE and "cpus" in big["missing"]
    assert big["largest_free_cpus"] == 32 and dests["tpv_big"]["state"] == "fresh"
    assert dests["tpv_de02"]["cluster_usage"]["shape"] == TOTALS_SHAPE
    assert "pulsar_small" in answer.json()["sites_without_destination"]
