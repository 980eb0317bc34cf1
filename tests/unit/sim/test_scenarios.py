"""Scenarios load (with `extends`), bad ones name the key; the true network is the broker's
bandwidth model of the scenario's shape, times a factor the broker does not know."""

from __future__ import annotations

import pytest

from broker.ranking.transfer import bandwidth_mb_s, distance_km
from broker.sim.network import Network, broker_settings
from broker.sim.scenario import ScenarioError, load_scenario
from broker.sim.workload import rng_for
from tests.support.sim_scenarios import EXAMPLES, SMALL, scenario_file


def test_example_scenarios_load_and_share_the_european_network():
    paths = sorted(EXAMPLES.glob("*.yaml"))
    names = {load_scenario(p).name for p in paths}
    assert {"calm-day", "burst", "site-outage", "silent-failure", "data-heavy"} <= names
    for p in paths:
        sc = load_scenario(p)
        assert len(sc.sites) >= 12 and len(sc.objectstores) >= 3
    heavy = load_scenario(EXAMPLES / "data-heavy.yaml")
    calm = load_scenario(EXAMPLES / "calm-day.yaml")
    # `extends` merges mappings key by key: only the input size changed
    heavy_mb, calm_mb = (s.tools["bwa_mem"].inputs.size_median_mb for s in (heavy, calm))
    assert heavy_mb == 10 * calm_mb
    assert heavy.tools["bwa_mem"].cores == calm.tools["bwa_mem"].cores


def test_bad_scenario_names_the_key(tmp_path):
    bad = scenario_file(tmp_path, outages=[{"site": "nowhere", "start_h": 1, "duration_h": 1}])
    with pytest.raises(ScenarioError, match="outages.0.site"):
        load_scenario(bad)


def test_bandwidth_and_inputs_keep_their_yaml_keys(tmp_path):
    shape = {"peak_mb_s": 500.0, "half_distance_km": 50.0, "floor_mb_s": 5.0, "noise_sigma": 0}
    tools = {"t": {**SMALL["tools"]["small"], "inputs": {"count": 3, "size_median_mb": 7}}}
    sc = load_scenario(scenario_file(tmp_path, bandwidth=shape, tools=tools))
    assert sc.bandwidth.peak_mb_s == 500 and sc.bandwidth.noise_sigma == 0
    assert (sc.tools["t"].inputs.count, sc.tools["t"].inputs.size_median_mb) == (3, 7)
    with pytest.raises(ScenarioError, match="bandwidth.peak_mbs"):
        load_scenario(scenario_file(tmp_path, bandwidth={"peak_mbs": 1}))


def test_without_noise_the_true_network_is_the_brokers_model(tmp_path):
    shape = {"peak_mb_s": 800.0, "half_distance_km": 150.0, "floor_mb_s": 20.0, "noise_sigma": 0}
    sc = load_scenario(scenario_file(tmp_path, bandwidth=shape))
    net = Network.build(sc, rng_for(0, "network"))
    model = broker_settings(sc).ranking.bandwidth
    assert (model.peak_mb_s, model.half_distance_km, model.floor_mb_s) == (800, 150, 20)
    for (store, site), mb_s in net.mb_s.items():
        s, conf = sc.objectstores[store], sc.sites[site]
        km = distance_km((s.latitude, s.longitude), (conf.latitude, conf.longitude))
        assert net.km[(store, site)] == km
        assert mb_s == bandwidth_mb_s(model, km)
    far = max(net.km, key=net.km.get)
    assert net.mb_s[far] == max(20.0, 800.0 / (1 + net.km[far] / 150.0))


def test_the_noise_is_a_fixed_factor_per_pair_the_broker_does_not_know(small):
    a = Network.build(small, rng_for(0, "network"))
    b = Network.build(small, rng_for(0, "network"))
    c = Network.build(small, rng_for(1, "network"))
    assert a.mb_s == b.mb_s != c.mb_s  # the seed's network, the same for every policy
    model = broker_settings(small).ranking.bandwidth
    true = small.bandwidth
    assert (model.peak_mb_s, model.half_distance_km, model.floor_mb_s) == (
        true.peak_mb_s,
        true.half_distance_km,
        true.floor_mb_s,
    )
    ratios = [mb_s / bandwidth_mb_s(model, a.km[pair]) for pair, mb_s in a.mb_s.items()]
    assert any(r > 1.05 for r in ratios) and any(r < 0.95 for r in ratios)
