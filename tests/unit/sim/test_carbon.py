"""The simulator's carbon: each site's grid intensity reaches the broker through the metric
pipeline, the emissions of every attempt are counted, and a price on carbon cuts them."""

from __future__ import annotations

import json
import math

import pytest

from broker.sim.report import summarize
from broker.sim.runner import new_simulation, parse_policy, run_seed, simulate_policies
from broker.sim.scenario import ScenarioError, load_scenario
from tests.support.sim_scenarios import SMALL, scenario_file

GRIDS = {"a": 50.0, "b": 400.0, "c": 600.0}  # the fast pools dirtier


def with_grids(tmp_path, grids=GRIDS):
    sites = json.loads(json.dumps(SMALL["sites"]))
    for site, g in grids.items():
        sites[site]["carbon_g_per_kwh"] = g
    return load_scenario(scenario_file(tmp_path, sites=sites))


def routes(result):
    return [(r.job.id, a.dest) for r in result.records for a in r.attempts]


def test_the_intensities_reach_the_broker_and_unpriced_they_move_no_job(tmp_path, small):
    sc = with_grids(tmp_path)
    sim = new_simulation(sc, "broker", 0)
    sim.schedule_all()
    sim.advance(sim.start)
    current = sim.pipeline.derived().intensities.current
    assert {s: c.g_per_kwh for s, c in current.items()} == GRIDS
    (grids,) = simulate_policies(sc, ["broker"], 3)
    (none,) = simulate_policies(small, ["broker"], 3)
    assert routes(grids) == routes(none)
    assert summarize(grids)["carbon_g_per_job"] > 0
    assert math.isnan(summarize(none)["carbon_g_per_job"])  # no intensity known anywhere


def test_every_attempt_that_ran_is_counted_at_its_sites_intensity(tmp_path):
    (result,) = simulate_policies(with_grids(tmp_path), ["weighted_random"], 1)
    kg = 0.0
    for r in result.records:
        for a in r.attempts:
            if not math.isnan(a.started) and not math.isnan(a.ended):
                kg += (a.ended - a.started) * a.cores * 10 * GRIDS[a.site] / 3.6e9
    per_job = summarize(result)["carbon_g_per_job"]
    assert kg > 0 and per_job * len(result.records) / 1000 == pytest.approx(kg)


def test_a_price_on_carbon_cuts_the_emissions_per_job(tmp_path):
    sc = with_grids(tmp_path)
    specs = [parse_policy("broker"), parse_policy("broker:carbon_s_per_kg=1000000")]
    for seed in (4, 5):
        unpriced, priced = (r.summary["carbon_g_per_job"] for r in run_seed(sc, specs, seed))
        assert priced < 0.8 * unpriced


def test_a_scenario_gives_every_site_an_intensity_or_none(tmp_path):
    with pytest.raises(
        ScenarioError, match=r"carbon_g_per_kwh is set for some sites, not for \['b', 'c'\]"
    ):
        with_grids(tmp_path, {"a": 50.0})
