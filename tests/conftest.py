"""Shared fixtures. Real services: a session-wide InfluxDB 1.x started here."""

from __future__ import annotations

import pytest

from tests.support.influxdb import InfluxServer


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory):
    server = InfluxServer(tmp_path_factory.mktemp("influxdb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influxdb(influx_server):
    """A running InfluxDB with an empty `galaxy` database; restarted if a test stopped it."""
    if influx_server.process is None:
        influx_server.start()
    influx_server.reset()
    return influx_server
