"""ARBO state on the real PostgreSQL (127.0.0.1:5432, trust auth): its own database
``arbo_test`` (created when missing, its table dropped before each test, so runs repeat)."""

from __future__ import annotations

import multiprocessing
import os
import threading

import psycopg
import pytest
from sqlalchemy import text

from broker.arbo.store import ArboStore
from broker.config import ArboSettings, Settings

pytestmark = pytest.mark.integration

ADMIN_DSN = os.environ.get("ARBO_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres")
DATABASE = "arbo_test"
WRITERS = 8
PER_WRITER = 25


def _url() -> str:
    info = psycopg.conninfo.conninfo_to_dict(ADMIN_DSN)
    return (
        f"postgresql+psycopg://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:"
        f"{info.get('port', 5432)}/{DATABASE}"
    )


@pytest.fixture
def pg_url() -> str:
    try:
        with psycopg.connect(ADMIN_DSN + " dbname=postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable ({exc}); start it, this test needs it")
    store = ArboStore(_url())
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS arbo_runs"))
    store.dispose()
    return _url()


def _write(url: str, writer: int) -> None:
    """One concurrent writer: its own engine (own connections), as a second broker would."""
    store = ArboStore(url)
    for i in range(PER_WRITER):
        store.add_run("shared", s=1 + writer, seconds=float(writer * 1000 + i), load=0.5)
    store.dispose()


def _expected(writers: int = WRITERS) -> list[float]:
    return sorted(float(w * 1000 + i) for w in range(writers) for i in range(PER_WRITER))


def test_concurrent_threads_lose_no_run(pg_url):
    ArboStore(pg_url).dispose()
    threads = [threading.Thread(target=_write, args=(pg_url, w)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = ArboStore(pg_url)
    assert sorted(r.seconds for r in store.recent("shared", 10_000)) == _expected()
    assert store.counts("shared")[0] == WRITERS * PER_WRITER


def test_concurrent_processes_lose_no_run(pg_url):
    ArboStore(pg_url).dispose()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write, args=(pg_url, w)) for w in range(WRITERS // 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * (WRITERS // 2)
    store = ArboStore(pg_url)
    assert sorted(r.seconds for r in store.recent("shared", 10_000)) == _expected(WRITERS // 2)


def test_api_on_postgres_learns_and_keeps_state_across_restarts(pg_url, tmp_path):
    # Imported here: the spawned writer processes above import this module, and need not load
    # FastAPI and scikit-learn just to insert rows.
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from broker.arbo.routes import router
    from broker.errors import install_error_handlers

    def app() -> FastAPI:
        a = FastAPI()
        install_error_handlers(a)
        a.state.settings = Settings(state_dir=tmp_path, arbo=ArboSettings(database_url=pg_url))
        a.include_router(router)
        return a

    def duration(s):
        return 30 + 900 * (0.05 + 0.95 / s)

    with TestClient(app()) as c:
        for s in (4, 16, 2, 32, 8, 64, 4, 16, 8, 32):
            r = c.post("/arbo/feedback", json={"task": "pg", "s": s, "seconds": duration(s)})
            assert r.status_code == 200
    assert not (tmp_path / "arbo.sqlite").exists()  # the configured URL is used, not SQLite
    with TestClient(app()) as c:  # a restarted broker sees the same history
        info = c.get("/arbo/tasks/pg").json()
        assert info["runs"] == 10
        assert info["model"]["p"] == pytest.approx(0.95, abs=0.05)
        ask = {"task": "pg", "default_s": 4, "slo": {"max_seconds": duration(20)}}
        answer = c.post("/arbo/parallelism", json=ask).json()
        # The SLO holds at the true run time (s >= 20). Above that, the s is chosen at the 90 %
        # quantile, and ten runs still leave the noise prior (SIGMA0) weight, so it is somewhat
        # above 20; but it is not the "as many workers as allowed" of a model that learned
        # nothing (a factor 2 at most).
        assert answer["slo_met"] and 20 <= answer["s"] <= 40
