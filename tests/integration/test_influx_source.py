"""The broker against a real InfluxDB 1.x: reading, background refresh, and faults."""

from __future__ import annotations

import asyncio
import http.server
import logging
import threading
import time

import pytest
from fastapi.testclient import TestClient

from broker.app import build_cache, create_app
from broker.config import Settings
from broker.demo import free_port
from broker.metrics.influx import InfluxSource
from metric_contract.lineprotocol import format_point

pytestmark = pytest.mark.integration
TOOL = "toolshed/repos/devteam/bwa/bwa_mem/0.7.17.2"


def usage_line(site: str, free: int, t_s: float, idle: int = 0) -> str:
    fields = {
        "cpus": 64,
        "cpus_free": free,
        "memory_mb": 262144,
        "memory_mb_free": free * 4096,
        "gpus": 0,
        "gpus_free": 0,
        "jobs_idle": idle,
        "jobs_running": 64 - free,
        "jobs_held": 0,
        "largest_free_cpus": free,
        "largest_free_memory_mb": free * 4096,
    }
    return format_point("htcondor_cluster_usage", {"site": site}, fields, int(t_s * 1e9))


def history_lines(t_s: float) -> list[str]:
    ns = int(t_s * 1e9)
    out = []
    for dest in ("dest_a", "dest_b"):
        tags = {"destination_id": dest, "tool_id": TOOL}
        out.append(
            format_point(
                "destination-queue-run-time",
                tags,
                {
                    "count": 40,
                    "median_queue": 60,
                    "median_run": 900,
                    "perc_95_queue": 300,
                    "perc_95_run": 2000,
                },
                ns,
            )
        )
        out.append(format_point("job_outcomes", tags, {"ok": 39, "error": 1, "window_days": 7}, ns))
    return out


def settings_for(influx, **metrics) -> Settings:
    return Settings.model_validate(
        {
            "metrics": {
                "source": "influxdb",
                "staleness_s": 120,
                "influxdb": {
                    "url": influx.url,
                    "database": influx.database,
                    "timeout_s": 1.0,
                    "refresh_s": 0.2,
                },
                **metrics,
            },
            "destinations": {
                "dest_a": {"site": "site_a", "latitude": 48.0, "longitude": 7.8},
                "dest_b": {"site": "site_b", "latitude": 51.0, "longitude": 3.7},
            },
        }
    )


REQUEST = {
    "destinations": [{"id": "dest_a"}, {"id": "dest_b"}],
    "job_info": {"tool_id": TOOL, "cores": 8, "mem": 16},
}


def test_source_reads_newest_point_of_every_series(influxdb):
    now = time.time()
    influxdb.write(
        [
            usage_line("site_a", free=10, t_s=now - 600),
            usage_line("site_a", free=40, t_s=now - 5),  # the newest wins
            usage_line("site b,with=odd chars", free=3, t_s=now - 5),
            format_point(
                "queue_by_destination",
                {"destination_id": "dest_a", "state": "queued"},
                {"count": 7},
                int(now * 1e9),
            ),
            *history_lines(now - 3600),
        ]
    )
    view = InfluxSource(settings_for(influxdb).metrics.influxdb).fetch()
    assert view.cluster["site_a"].cpus_free == 40
    assert view.cluster["site_a"].time_s == pytest.approx(now - 5, abs=0.01)
    assert view.cluster["site b,with=odd chars"].cpus_free == 3
    assert view.queues["dest_a"]["queued"].count == 7
    assert view.runtimes[("dest_b", TOOL)].median_run == 900
    assert view.outcomes[("dest_a", TOOL)].error == 1
    assert view.frozen_now_s is None  # live: ages against the wall clock


def test_background_refresh_changes_the_ranking_when_a_site_fills_up(influxdb):
    now = time.time()
    influxdb.write(
        [usage_line("site_a", 60, now), usage_line("site_b", 30, now), *history_lines(now)]
    )
    with TestClient(create_app(settings_for(influxdb))) as client:
        assert client.post("/process_data", json=REQUEST).json()["sorted_destinations"] == [
            "dest_a",
            "dest_b",
        ]
        influxdb.write(usage_line("site_a", 0, time.time(), idle=200))  # site_a fills up
        deadline = time.monotonic() + 15
        order = None
        while time.monotonic() < deadline:
            order = client.post("/process_data", json=REQUEST).json()["sorted_destinations"]
            if order == ["dest_b", "dest_a"]:
                break
            time.sleep(0.1)
        assert order == ["dest_b", "dest_a"]


def test_silent_site_turns_stale(influxdb):
    now = time.time()
    influxdb.write(
        [usage_line("site_a", 60, now - 600), usage_line("site_b", 2, now), *history_lines(now)]
    )
    cache = build_cache(settings_for(influxdb))
    with TestClient(create_app(settings_for(influxdb), cache)) as client:
        exp = client.post("/process_data?explain=true", json=REQUEST).json()["explanation"]
    states = {d["id"]: d["state"] for d in exp["destinations"]}
    assert states == {"dest_a": "stale", "dest_b": "fresh"}
    assert [d["id"] for d in exp["destinations"]] == ["dest_b", "dest_a"]


def test_influxdb_stopped_mid_test_keeps_the_last_good_view(influxdb):
    now = time.time()
    influxdb.write(
        [usage_line("site_a", 0, now, idle=200), usage_line("site_b", 60, now), *history_lines(now)]
    )
    settings = settings_for(influxdb)
    cache = build_cache(settings)
    with TestClient(create_app(settings, cache)) as client:
        before = client.post("/process_data", json=REQUEST).json()
        influxdb.stop()
        assert cache.refresh() is False
        r = client.post("/process_data?explain=true", json=REQUEST)
        assert r.status_code == 200
        answer = r.json()
        assert (
            answer["sorted_destinations"] == before["sorted_destinations"] == ["dest_b", "dest_a"]
        )
        assert "unreachable" in answer["explanation"]["source_error"]
        assert answer["explanation"]["degraded"] is True
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["metrics"]["failures"] >= 1
        influxdb.start()
        influxdb.write(
            [usage_line("site_a", 60, time.time()), usage_line("site_b", 60, time.time())]
        )
        assert cache.refresh() is True
        assert client.get("/health").json()["status"] == "ok"


class _Misbehaving(http.server.BaseHTTPRequestHandler):
    mode = "garbage"

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.mode == "slow":
            time.sleep(3)
        body = {"garbage": b"<html>not json</html>", "noresults": b'{"foo": 1}'}.get(
            self.mode, b"{}"
        )
        status = 500 if self.mode == "error" else 200
        try:
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def misbehaving():
    servers = []

    def start(mode):
        handler = type("H", (_Misbehaving,), {"mode": mode})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()


@pytest.mark.parametrize(
    "mode, message",
    [
        ("garbage", "not JSON"),
        ("noresults", "results"),
        ("error", "HTTP 500"),
        ("slow", "did not answer"),
    ],
)
def test_bad_influxdb_answers_keep_the_last_good_view(influxdb, misbehaving, mode, message):
    now = time.time()
    influxdb.write([usage_line("site_a", 0, now, idle=200), usage_line("site_b", 60, now)])
    settings = settings_for(influxdb)
    cache = build_cache(settings)
    assert cache.refresh() is True
    cache.source = InfluxSource(
        settings.metrics.influxdb.model_copy(update={"url": misbehaving(mode), "timeout_s": 0.5})
    )
    with TestClient(create_app(settings, cache)) as client:
        # lifespan's first refresh already hit the misbehaving server
        answer = client.post("/process_data?explain=true", json=REQUEST).json()
    assert answer["sorted_destinations"] == ["dest_b", "dest_a"]
    assert message in answer["explanation"]["source_error"]


def test_a_request_does_not_wait_for_a_hanging_refresh(influxdb, misbehaving):
    settings = settings_for(influxdb)
    settings.metrics.influxdb.url = misbehaving("slow")
    settings.metrics.influxdb.timeout_s = 2.5
    cache = build_cache(settings)
    app = create_app(settings, cache)
    client = TestClient(app)  # no lifespan: refresh driven by hand below
    refresher = threading.Thread(target=cache.refresh)
    refresher.start()
    time.sleep(0.2)
    assert refresher.is_alive()  # the refresh is stuck waiting on InfluxDB...
    r = client.post("/process_data", json=REQUEST)
    assert r.status_code == 200
    assert refresher.is_alive()  # ...and the request was answered meanwhile
    assert r.json()["sorted_destinations"] == ["dest_a", "dest_b"]  # no data: TPV's order
    refresher.join()


class Trickle:
    """A real HTTP server (asyncio, in a thread) that sends its headers at once and then its
    body one byte every `interval_s` (or, with `in_headers`, trickles a header line): each read
    returns quickly, the whole answer never ends."""

    def __init__(self, interval_s: float = 0.05, in_headers: bool = False):
        self.interval_s = interval_s
        self.in_headers = in_headers
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(5)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                if self.in_headers:
                    writer.write(b"X-Slow: ")
                else:
                    writer.write(b"Content-Length: 1000000\r\n\r\n")
                while True:
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(self.interval_s)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        server = self.loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", self.port))
        ready.set()
        self.loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture(params=["body", "headers"])
def trickle(request):
    server = Trickle(in_headers=request.param == "headers")
    yield server
    server.stop()


def test_a_trickling_influxdb_cannot_hold_the_refresh_past_its_deadline(influxdb, trickle):
    settings = settings_for(influxdb)
    settings.metrics.influxdb.url = trickle.url
    settings.metrics.influxdb.timeout_s = 1.0
    cache = build_cache(settings)
    started = time.monotonic()
    result = []
    refresher = threading.Thread(target=lambda: result.append(cache.refresh()), daemon=True)
    refresher.start()
    refresher.join(timeout=10)  # before the fix it read on for as long as the server sent
    took = time.monotonic() - started
    assert result == [False], f"the refresh still ran after {took:.1f} s"
    assert took < 1.5, f"the refresh took {took:.1f} s against a 1 s deadline"
    assert "did not answer within 1.0 s" in cache.status.last_error
    with TestClient(create_app(settings, cache)) as client:  # its first refresh trickles too
        health = client.get("/health").json()
    assert health["status"] == "degraded" and "within" in health["metrics"]["last_error"]


def test_credentials_of_influxdb_are_never_shown_or_logged(influxdb, misbehaving, caplog):
    secrets = ("urlpass123", "settingpass456")
    for url in (f"http://127.0.0.1:{free_port()}", misbehaving("error")):  # refused; HTTP 500
        host = url.removeprefix("http://")
        settings = settings_for(influxdb)
        settings.metrics.influxdb.url = f"http://tpv:{secrets[0]}@{host}"
        settings.metrics.influxdb.username = "tpv"
        settings.metrics.influxdb.password = secrets[1]
        caplog.clear()
        with caplog.at_level(logging.DEBUG), TestClient(create_app(settings)) as client:
            health = client.get("/health").text
            explanation = client.post("/process_data?explain=true", json=REQUEST).text
        assert "degraded" in health and "***@" in health
        shown = health + explanation + caplog.text
        assert not any(secret in shown for secret in secrets), shown
