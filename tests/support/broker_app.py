"""For the hardening tests: settings in the environment's shape, a small request, and a real
uvicorn server in a thread (for what the test client cannot show: connections, the loop)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import uvicorn

from broker.config import load_settings
from broker.demo import free_port

SMALL = {"destinations": [{"id": "pulsar_it_bari"}, {"id": "pulsar_be_ghent"}]}


def settings(tmp_path, **env):
    return load_settings(
        environ={"TPV_BROKER_STATE_DIR": str(tmp_path), **{k: str(v) for k, v in env.items()}}
    )


@contextmanager
def serving(app):
    """A real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def reprioritize_body(pending, dim=2, completed=5):
    return {
        "completed": [{"id": i, "x": [i * 0.1] * dim, "y": float(i)} for i in range(completed)],
        "pending": [{"id": f"p{i}", "x": [i * 0.01] * dim} for i in range(pending)],
    }
