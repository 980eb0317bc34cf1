"""The transfer term, through the ranking: data locality and bandwidth."""

import pytest

from broker.ranking.transfer import bandwidth_mb_s, distance_km
from tests.support.ranking import by_id, ranked, request, settings, usage, view_of


def test_data_locality_wins_when_everything_else_is_equal():
    view = view_of(usage("a"), usage("b"), usage("pool_c"))
    req = request(datasets={"1": {"object_store_id": "store_a", "size": 50e9}})
    response = ranked(view, req)
    exp = by_id(response)
    assert response.sorted_destinations[0] == "a"
    assert exp["a"].transfer_s == 0
    # 50 GB over ~410 km (Freiburg -> Ghent) at the distance-based bandwidth
    km = distance_km((48.0, 7.8), (51.0, 3.7))
    assert 350 < km < 500
    expected = 50e9 / 1e6 / bandwidth_mb_s(settings().ranking.bandwidth, km)
    assert exp["b"].transfer_s == pytest.approx(expected, rel=1e-3)
    assert exp["c"].transfer_s > exp["b"].transfer_s  # Bari is farther than Ghent


def test_measured_bandwidth_matrix_overrides_distance():
    cfg = settings(ranking={"bandwidth": {"matrix": {"store_a": {"c": 5000.0}}}})
    view = view_of(usage("a"), usage("b"), usage("pool_c"))
    req = request(datasets={"1": {"object_store_id": "store_a", "size": 5e9}})
    assert by_id(ranked(view, req, cfg))["c"].transfer_s == pytest.approx(1.0)
