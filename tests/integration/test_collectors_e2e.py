"""End to end on real services: producer (fed real ClassAds) -> RabbitMQ -> consumer run as
Telegraf's exec would run it -> InfluxDB /write -> the broker's background refresh -> a ranking
that changes when a site fills up, and a site that stops reporting turning stale."""

from __future__ import annotations

import time

import classad2
import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.config import Settings
from collectors import htcondor_producer
from tests.support.htcondor_pool import FakePool, job_ads, startd_ads
from tests.support.rabbitmq import AMQP_URL
from tests.support.telegraf import run_module, telegraf_write

pytestmark = pytest.mark.integration

STALENESS_S = 3.0
# Destination ids differ from site names (TPV ids vs HTCondor pools); one needs escaping.
DESTINATIONS = {"pulsar_a": "site a,1=x", "pulsar_b": "site_b"}
REQUEST = {
    "destinations": [{"id": "pulsar_a"}, {"id": "pulsar_b"}],
    "job_info": {"tool_id": "bwa_mem", "mem": 8, "cores": 4},
}


def free_pool() -> FakePool:
    return FakePool(startd_ads(), job_ads())


def full_pool() -> FakePool:
    busy = [ad for ad in startd_ads() if ad.eval("State") != "Unclaimed"]
    idle = [classad2.ClassAd(f"[ ClusterId = {i}; JobStatus = 1 ]") for i in range(200)]
    return FakePool(busy, idle)


def settings_for(influxdb, tmp_path) -> Settings:
    return Settings.model_validate(
        {
            "state_dir": str(tmp_path),
            "metrics": {
                "source": "influxdb",
                "staleness_s": STALENESS_S,
                "influxdb": {"url": influxdb.url, "database": influxdb.database, "refresh_s": 0.2},
            },
            "destinations": {
                d: {"site": s, "latitude": 50.0, "longitude": 8.0} for d, s in DESTINATIONS.items()
            },
        }
    )


def report(topo, influxdb, pools: dict[str, FakePool]) -> None:
    """One minute of the pipeline: each site's timer fires, then Telegraf runs the consumer."""
    for site, pool in pools.items():
        argv = ["--site", site, "--amqp-url", AMQP_URL, "--exchange", topo.exchange]
        assert htcondor_producer.main(argv, source=pool) == 0
    proc = run_module("collectors.amqp_consumer", *topo.consumer_args("--max-seconds", "4"))
    assert proc.returncode == 0, proc.stderr
    assert telegraf_write(influxdb, proc.stdout) == len(pools)


def rank_until(client, predicate, timeout_s: float = 10.0) -> dict:
    """Ask until the background refresh has picked up the new points (refresh_s = 0.2 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = client.post("/process_data?explain=true", json=REQUEST)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if predicate(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def states(body) -> dict[str, str]:
    return {d["id"]: d["state"] for d in body["explanation"]["destinations"]}


def test_ranking_follows_the_pools_and_a_silent_site_goes_stale(topology, influxdb, tmp_path):
    site_a, site_b = DESTINATIONS["pulsar_a"], DESTINATIONS["pulsar_b"]
    run_module("collectors.amqp_consumer", *topology.consumer_args())  # declares its queue
    app = create_app(settings_for(influxdb, tmp_path))
    with TestClient(app) as client:
        # 1. a has free slots, b is full: a first
        report(topology, influxdb, {site_a: free_pool(), site_b: full_pool()})
        body = rank_until(client, lambda b: set(states(b).values()) == {"fresh"})
        assert states(body) == {"pulsar_a": "fresh", "pulsar_b": "fresh"}
        assert body["sorted_destinations"] == ["pulsar_a", "pulsar_b"]
        ranks = {d["id"]: d["rank"] for d in body["explanation"]["destinations"]}
        assert ranks == {"pulsar_a": 1, "pulsar_b": 2}

        # 2. a fills up, b frees: the order flips
        report(topology, influxdb, {site_a: full_pool(), site_b: free_pool()})
        body = rank_until(client, lambda b: b["sorted_destinations"][0] == "pulsar_b")
        assert body["sorted_destinations"] == ["pulsar_b", "pulsar_a"]
        assert set(states(body).values()) == {"fresh"}

        # 3. b stops reporting, a keeps going and is free again: b turns stale and goes last
        silent_since = time.monotonic()
        while time.monotonic() - silent_since < STALENESS_S + 0.5:
            report(topology, influxdb, {site_a: free_pool()})
            time.sleep(0.5)
        body = rank_until(client, lambda b: states(b)["pulsar_b"] == "stale")
        assert states(body) == {"pulsar_a": "fresh", "pulsar_b": "stale"}
        assert body["sorted_destinations"] == ["pulsar_a", "pulsar_b"]
        assert body["explanation"]["destinations"][1]["id"] == "pulsar_b"
