"""The transfer model on its own: bandwidth by distance or measurement, staging times by hand."""

import pytest

from broker.config import BandwidthSettings
from broker.ranking.transfer import Bandwidth, Inputs, Transfers, bandwidth_mb_s, distance_km

FREIBURG, GHENT, BARI = (48.0, 7.8), (51.05, 3.72), (41.1, 16.9)


class Dest:
    def __init__(self, id, coords=None, local_stores=()):
        self.id, self.coords, self.local_stores = id, coords, local_stores


def transfers(datasets, dests, settings=None, request_coords=None, placed=None):
    bw = Bandwidth(
        settings or BandwidthSettings(),
        placed
        if placed is not None
        else {d.id: (d.coords, d.local_stores) for d in dests if d.coords},
        {"fr": FREIBURG},
    )
    inputs = Inputs.of(datasets, request_coords or {})
    return Transfers.compute(bw, dests, inputs, bw.rows(dests))


def test_distance_and_the_bandwidth_curve():
    assert distance_km(FREIBURG, FREIBURG) == 0
    # 3.05 deg north, 4.08 deg east at 49.5 deg: sqrt(3.05^2 + (4.08 cos 49.5)^2) x 111.2 km
    assert distance_km(FREIBURG, GHENT) == pytest.approx(449, rel=0.01)
    s = BandwidthSettings(peak_mb_s=1000, half_distance_km=100, floor_mb_s=10)
    assert bandwidth_mb_s(s, 0) == 1000
    assert bandwidth_mb_s(s, 100) == 500
    assert bandwidth_mb_s(s, 1e6) == 10  # the floor


def test_staging_time_is_bytes_over_bandwidth_and_local_data_is_free():
    dests = [Dest("fr", FREIBURG, {"fr"}), Dest("be", GHENT)]
    t = transfers({"1": {"object_store_id": "fr", "size": 5e9}}, dests)
    km = distance_km(FREIBURG, GHENT)
    assert t.seconds[0] == 0
    assert t.seconds[1] == pytest.approx(5e9 / (bandwidth_mb_s(BandwidthSettings(), km) * 1e6))
    assert t.of(0).note() == "all inputs already local"
    assert t.of(1).note() == "5.00 GB to move"


def test_a_measured_bandwidth_overrides_the_distance():
    settings = BandwidthSettings(matrix={"fr": {"be": 50.0}})
    t = transfers({"1": {"object_store_id": "fr", "size": 1e9}}, [Dest("be", GHENT)], settings)
    assert t.seconds[0] == pytest.approx(1e9 / 50e6)


def test_unplaced_destinations_and_unknown_stores():
    # No coordinates for the destination: the configured unknown distance is assumed.
    t = transfers({"1": {"object_store_id": "fr", "size": 1e9}}, [Dest("x")])
    far = BandwidthSettings().unknown_distance_km
    assert t.seconds[0] == pytest.approx(1e9 / (bandwidth_mb_s(BandwidthSettings(), far) * 1e6))
    assert "1 store(s) without coordinates assumed 1000 km away" in t.of(0).note()
    # A store the config does not know, placed by the request: computed per request.
    t = transfers(
        {"1": {"object_store_id": "elsewhere", "size": 2e9}},
        [Dest("be", GHENT)],
        request_coords={"elsewhere": GHENT},
    )
    assert t.seconds[0] == pytest.approx(2e9 / 1000e6)
    # Data without a store is not counted, and said so.
    t = transfers({"1": {"object_store_id": None, "size": 3e9}}, [Dest("be", GHENT)])
    assert t.seconds[0] == 0 and "3.00 GB in an unknown store not counted" in t.of(0).note()


def test_inputs_without_a_size_are_not_counted():
    inputs = Inputs.of({"1": {"object_store_id": "fr", "size": None}, "2": {"size": 5}}, {})
    assert inputs.total_bytes == 5 and inputs.by_store == []
