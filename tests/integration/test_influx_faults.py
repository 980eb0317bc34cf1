"""The broker against a real InfluxDB 1.x that misbehaves: bad answers, a hanging or
trickling server, credentials."""

from __future__ import annotations

import asyncio
import http.server
import logging
import threading
import time

import pytest
from fastapi.testclient import TestClient

from broker.app import build_cache, create_app
from broker.demo import free_port
from broker.metrics.influx import InfluxSource
from tests.support.influx_network import REQUEST, settings_for, usage_line

pytestmark = pytest.mark.integration


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
