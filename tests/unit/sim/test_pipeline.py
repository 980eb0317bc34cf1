"""The metric pipeline: what reaches the policies, with the real pipeline's cadence and delays."""

from __future__ import annotations

from broker.sim.runner import new_simulation
from broker.sim.scenario import load_scenario
from metric_contract.measurements import CLUSTER, QUEUE
from tests.support.sim_scenarios import scenario_file


def test_metrics_reach_the_policy_with_the_pipelines_delay_and_granularity(small):
    sim = new_simulation(small, "broker", 0)
    sim.schedule_all()
    sim.advance(sim.start + 45)  # the daily gxadmin run at the window's start, then a refresh
    view = sim.pipeline.view()
    now = sim.pipeline.clock(sim.now)
    conf = small.pipeline
    for site, usage in view.cluster.items():
        age = now - usage.time_s
        # collected every minute, 5 s to InfluxDB, read at the last 30 s refresh
        assert (
            conf.consumer_delay_s
            <= age
            <= (conf.producer_interval_s + conf.consumer_delay_s + conf.broker_refresh_s + 1)
        )
        state = sim.sites[site]
        assert usage.cpus == state.total[0]
        assert usage.memory_mb == state.total[1]  # MB, as HTCondor reports
    # run-time aggregates are daily: all stamped at the same midnight (the window's start)
    stamps = {r.time_s for r in view.runtimes.values()}
    assert len(stamps) == 1 and abs(now - stamps.pop() - (sim.now - sim.start)) < 1e-3
    assert view.outcomes and all(o.ok + o.error > 0 for o in view.outcomes.values())


def test_a_site_that_is_down_reports_nothing_and_goes_stale(tmp_path):
    sc = load_scenario(
        scenario_file(tmp_path, outages=[{"site": "a", "start_h": 0.2, "duration_h": 1}])
    )
    sim = new_simulation(sc, "broker", 0)
    sim.schedule_all()
    sim.advance(sim.start + 0.9 * 3600)
    view = sim.pipeline.view()
    now = sim.pipeline.clock(sim.now)
    age = now - view.cluster["a"].time_s
    assert age > sc.pipeline.producer_interval_s * 10
    assert now - view.cluster["b"].time_s < 120
    keys = [k for k in sim.pipeline._published if k[0] in (CLUSTER, QUEUE)]
    assert (CLUSTER, "a") in keys  # the old point is still there; only its age says stale
