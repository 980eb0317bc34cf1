"""Session fixtures of the TPV tests: the TPV venv, one TPV worker, a live broker (with a
recording proxy in front of it), a fault server.

Everything is started once per session because importing Galaxy costs seconds; tests that
change the broker's metrics put them back before they end (see `busy`). `tpv lint` (tens of
seconds: Galaxy import plus mypy) starts with the TPV worker and runs while the other tests do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fault_server import FaultServer
from tests.support.live_broker import Broker
from tests.support.paths import ROOT
from tests.support.rank_fragment import render_fragment
from tests.support.real_tpv import TPV_VENV, TpvWorker, ensure_tpv_venv, tpv_cli
from tests.support.recording_proxy import RecordingProxy


@pytest.fixture(scope="session")
def tpv_venv() -> Path:
    ensure_tpv_venv()
    return TPV_VENV


@pytest.fixture(scope="session")
def tpv_workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tpv")


@pytest.fixture(scope="session")
def tpv(tpv_venv, tpv_workdir, lint_run):
    # lint_run: started with the first TPV test, so `tpv lint` runs while the others do.
    worker = TpvWorker(tpv_workdir / "tpv-worker.log")
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def broker(tpv_workdir):
    b = Broker(tpv_workdir / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def busy(broker):
    """Make destinations busy for one test; the network is put back afterwards."""
    yield broker.set_busy
    broker.set_busy()


@pytest.fixture(scope="session")
def proxy(broker):
    """The live broker behind a proxy that records what it was sent (`take()`)."""
    recorder = RecordingProxy(broker.url)
    recorder.start()
    yield recorder
    recorder.stop()


@pytest.fixture(scope="session")
def fault_server():
    server = FaultServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fragments(tpv_workdir, broker, fault_server):
    """Rendered fragments by name: the role's defaults plus only the URL/token/timeout changed."""
    made: dict[str, Path] = {}

    def make(name: str, **overrides) -> Path:
        if name not in made:
            made[name] = render_fragment(tpv_workdir / f"{name}.yml", **overrides)
        return made[name]

    return make


@pytest.fixture(scope="session")
def lint_run(tpv_venv, tpv_workdir):
    """`tpv lint` of examples/tpv (the existing config + the fragment the role renders from
    examples/tpv/vars.yml, which test_tpv_cli.py proves current); started now, checked there.
    One run only: each costs a Galaxy import plus mypy, the largest CPU cost of these tests."""
    examples = ROOT / "examples" / "tpv"
    process = tpv_cli(
        "-vv",  # -v shows warnings, -vv also "lint successful"
        "lint",
        str(examples / "tpv-existing.yml"),
        str(examples / "tpv_broker_rank.yml"),
        cwd=tpv_workdir / "lint",
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate()
