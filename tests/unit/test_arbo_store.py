"""ARBO SQLite store: concurrent writers (threads and processes) lose no run; pruning is bounded."""

from __future__ import annotations

import multiprocessing
import threading

from broker.arbo.store import PRUNE_EVERY, ArboStore

WRITERS = 6
PER_WRITER = 25


def _write(url: str, writer: int, task: str = "shared") -> None:
    store = ArboStore(url)
    for i in range(PER_WRITER):
        store.add_run(task, s=1 + writer, seconds=float(writer * 1000 + i))
    store.dispose()


def _expected() -> list[float]:
    return sorted(float(w * 1000 + i) for w in range(WRITERS) for i in range(PER_WRITER))


def test_concurrent_threads_lose_no_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'arbo.sqlite'}"
    ArboStore(url).dispose()
    threads = [threading.Thread(target=_write, args=(url, w)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = ArboStore(url)
    assert sorted(r.seconds for r in store.recent("shared", 10_000)) == _expected()
    assert store.counts("shared")[:2] == (WRITERS * PER_WRITER, WRITERS * PER_WRITER)


def test_concurrent_processes_lose_no_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'arbo.sqlite'}"
    ArboStore(url).dispose()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write, args=(url, w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    store = ArboStore(url)
    assert sorted(r.seconds for r in store.recent("shared", 10_000)) == _expected()


def test_recent_returns_the_newest_window_oldest_first(tmp_path):
    store = ArboStore(f"sqlite:///{tmp_path / 'a.sqlite'}")
    for i in range(10):
        store.add_run("w", s=2, seconds=float(i), succeeded=i != 8)
    assert [r.seconds for r in store.recent("w", 3)] == [6.0, 7.0, 9.0]
    assert [r.seconds for r in store.recent("w", 3, succeeded_only=False)] == [7.0, 8.0, 9.0]


def test_pruning_keeps_the_newest_runs_per_task(tmp_path):
    store = ArboStore(f"sqlite:///{tmp_path / 'p.sqlite'}", retain_runs=10)
    for i in range(PRUNE_EVERY + 5):
        store.add_run("big", s=1, seconds=float(i + 1))
        store.add_run("other", s=1, seconds=1.0) if i == 0 else None
    kept = [r.seconds for r in store.recent("big", 10_000)]
    assert len(kept) < PRUNE_EVERY
    assert kept[-1] == float(PRUNE_EVERY + 5)  # the newest is always kept
    assert kept == sorted(kept) and len(kept) >= 10
    assert store.counts("other")[0] == 1  # other tasks untouched
