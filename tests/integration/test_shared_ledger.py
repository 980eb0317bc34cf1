"""Two real broker processes sharing the in-flight ledger through a real Redis: the machine's
(under a key prefix of the test's own) and one the test starts and stops mid-test."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from broker.config import LedgerSettings
from broker.ranking.shared_ledger import SharedLedger
from tests.support.live_broker import SITES, Broker, http_json, snapshot_lines
from tests.support.redis_server import RedisServer, key_prefix, machine_redis

pytestmark = pytest.mark.integration

REQUEST = {
    "destinations": [{"id": d} for d in SITES],
    "datasets": {"1": {"object_store_id": "os_bari", "size": 2 * 10**9}},
    "job_info": {"tool_id": "bwa_mem", "cores": 4, "mem": 8},
}


def brokers(tmp_path, influxdb, redis_url: str, prefix: str, n: int = 2) -> list[Broker]:
    influxdb.write(snapshot_lines(time_ns=time.time_ns()).splitlines()[1:])
    overrides = {
        "metrics": {
            "source": "influxdb",
            "snapshot": None,
            "influxdb": {"url": influxdb.url, "database": influxdb.database, "refresh_s": 0.5},
        },
        "ledger": {"redis_url": redis_url, "key_prefix": prefix, "retry_s": 0.2},
    }
    started = []
    try:
        for i in range(n):
            broker = Broker(tmp_path / f"broker{i}", overrides)
            broker.start()
            started.append(broker)
    except Exception:
        for broker in started:
            broker.stop()
        raise
    return started


def ledger(broker: Broker) -> dict[str, Any]:
    return http_json(broker.url + "/health")["ledger"]


def wait_for(check: Callable[[], bool], timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_burst_sent_to_two_brokers_is_in_both_ledgers(tmp_path, influxdb):
    client = machine_redis()
    if client is None:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    with key_prefix(client) as prefix:
        pair = brokers(tmp_path, influxdb, "redis://127.0.0.1:6379/0", prefix)
        try:
            assert all(ledger(b)["shared"] == "redis" for b in pair)
            assert wait_for(lambda: all(ledger(b)["error"] is None for b in pair))
            n = 40
            for i in range(n):
                order = pair[i % 2].rank(REQUEST)
                assert sorted(order) == sorted(SITES)
            # each saw its own 20 at once and the other's 20 through Redis; none twice
            assert wait_for(lambda: all(ledger(b)["jobs_in_flight"] >= n for b in pair))
            assert [ledger(b)["jobs_in_flight"] for b in pair] == [n, n]
            assert [ledger(b)["received"] for b in pair] == [n // 2, n // 2]
            # one stream entry per batch of decisions (a batch spans at most 10 ms)
            assert 0 < client.xlen(f"{prefix}routed") <= n
            # a broker started now learns what is still in flight
            late = brokers(tmp_path / "late", influxdb, "redis://127.0.0.1:6379/0", prefix, 1)[0]
            try:
                assert wait_for(lambda: ledger(late)["jobs_in_flight"] == n)
            finally:
                late.stop()
        finally:
            for broker in pair:
                broker.stop()


def test_redis_stopped_mid_test_answers_stay_200_and_health_says_degraded(tmp_path, influxdb):
    server = RedisServer(tmp_path / "redis")
    server.start()
    pair: list[Broker] = []
    try:
        pair = brokers(tmp_path, influxdb, server.url, "tpv_broker_test:")
        assert wait_for(lambda: all(ledger(b)["error"] is None for b in pair))
        pair[0].rank(REQUEST)
        assert wait_for(lambda: ledger(pair[1])["jobs_in_flight"] == 1)

        server.stop()
        for i in range(10):  # never a 5xx, and quick: a request does not wait on Redis
            started = time.monotonic()
            assert sorted(pair[i % 2].rank(REQUEST)) == sorted(SITES)  # urllib raises on 5xx
            assert time.monotonic() - started < 1
        # the readers notice at once, and each process keeps counting its own decisions
        assert wait_for(lambda: all(ledger(b)["error"] for b in pair))
        for broker in pair:
            health = http_json(broker.url + "/health")
            assert health["status"] == "degraded"
            assert "Redis ledger" in health["ledger"]["error"]
        assert [ledger(b)["jobs_in_flight"] for b in pair] == [1 + 5, 1 + 5]

        server.start()  # back on the same port, empty: both reconnect and resend
        assert wait_for(lambda: all(ledger(b)["error"] is None for b in pair))
        assert wait_for(lambda: all(ledger(b)["jobs_in_flight"] == 11 for b in pair))
        assert http_json(pair[0].url + "/health")["status"] == "ok"
    finally:
        for broker in pair:
            broker.stop()
        server.stop()


def test_two_ledgers_in_one_process_see_each_others_jobs_once_and_skip_malformed_entries():
    client = machine_redis()
    if client is None:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    with key_prefix(client) as prefix:
        settings = LedgerSettings(redis_url="redis://127.0.0.1:6379/0", key_prefix=prefix)
        a, b = (SharedLedger(60, 300, settings) for _ in range(2))
        a.start()
        b.start()
        try:
            now = time.time()
            a.add("freiburg", now, 10.0, cores=8, mem_mb=16384, gpus=0)
            b.add("bari", now, 0.0, cores=2, mem_mb=1024, gpus=1)
            client.xadd(f"{prefix}routed", {"p": "other", "e": "not json"})
            assert wait_for(lambda: a.jobs(now) == 2 and b.jobs(now) == 2)
            seen = b.in_flight("freiburg", reported_at_s=now - 1, now_s=now)
            assert (seen.jobs, seen.cores, seen.mem_mb) == (1, 8, 16384)
            # a point collected after the job should have reached its queue: forgotten
            assert b.in_flight("freiburg", reported_at_s=now + 71, now_s=now + 71).jobs == 0
            assert a.in_flight("bari", reported_at_s=now - 1, now_s=now).gpus == 1
            assert (a.describe(now)["received"], b.describe(now)["received"]) == (1, 1)
            assert a.error is None and b.error is None
        finally:
            a.stop()
            b.stop()
