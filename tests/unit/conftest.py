"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.config import load_settings
from tests.support.broker_app import settings


@pytest.fixture
def client(tmp_path):
    """The broker on the embedded demo network, its state in the test's own directory (a module
    with a `client` fixture of its own uses that one)."""
    with TestClient(create_app(settings(tmp_path))) as c:
        yield c


@pytest.fixture
def secured():
    """The broker on the demo network with two bearer tokens, `tok1` and `tok2`."""
    with TestClient(
        create_app(load_settings(environ={"TPV_BROKER_AUTH__TOKENS": "tok1,tok2"}))
    ) as c:
        yield c
