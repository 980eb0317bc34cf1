"""Fixtures of the integration tests (real services; the InfluxDB ones are in tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest

from tests.support.rabbitmq import Topology, rabbitmq_available


@pytest.fixture
def topology():
    """Unique names per test, so parallel runs and leftovers never meet; deleted afterwards."""
    if not rabbitmq_available():
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672 (rabbitmq-server -detached)")
    tag = uuid.uuid4().hex[:12]
    topo = Topology(exchange=f"test.metrics.{tag}", queue=f"test.htcondor.{tag}")
    yield topo
    topo.delete()
