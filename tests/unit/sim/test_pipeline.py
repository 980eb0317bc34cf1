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


def test_a_queue_row_is_not_held_back_behind_a_delayed_cluster_point(small):
    """A cluster-usage point reaches InfluxDB `consumer_delay_s` after collection, a queue row
    at once: a row written after that point but visible before it must be read at a refresh
    in between (points used to wait in write order behind the delayed one)."""
    sim = new_simulation(small, "broker", 0)
    pipe = sim.pipeline
    delay = small.pipeline.consumer_delay_s
    assert delay > 1
    pipe.cluster_usage(100.0, "a", sim.sites["a"].usage_fields())  # visible at 100 + delay
    pipe.queue_counts(101.0, {"dest_a": (3, 1)})  # visible at 101
    pipe.refresh(101.0 + (delay - 1) / 2)  # after the row, before the cluster point
    keys = set(pipe._published)
    assert (QUEUE, "dest_a", "queued") in keys and (QUEUE, "dest_a", "running") in keys
    assert (CLUSTER, "a") not in keys
    pipe.refresh(100.0 + delay)
    assert (CLUSTER, "a") in pipe._published
    assert pipe.view().queues["dest_a"]["queued"].count == 3
