"""The EMEWS client example end to end on real EQSQL queues in the real PostgreSQL.

Runs ``examples/emews/ackley_workflow.py`` at a small size (100 points, reprioritize every 20,
3 worker-pool processes, short sleeps) against its own database ``eqsql_test`` (created when
missing, EQSQL tables recreated by the example, so runs repeat), with an embedded broker
serving the real router over HTTP. Then checks, from what EQSQL stored: every task ran once
with the right result, the broker's priorities are what EQSQL holds, and the workers popped
the tasks in the broker's order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest
from scipy.stats import spearmanr

from benchmarks.reprioritize import ackley

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "emews" / "ackley_workflow.py"
DB = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "eqsql_test"}
POINTS, BATCH, POOLS = 100, 20, 3


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[dict, list[tuple]]:
    try:
        psycopg.connect(**{**DB, "dbname": "postgres"}).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable ({exc}); start it, this test needs it")
    summary_file = tmp_path_factory.mktemp("emews") / "summary.json"
    cmd = [
        sys.executable,
        str(EXAMPLE),
        f"--points={POINTS}",
        f"--batch={BATCH}",
        f"--pools={POOLS}",
        "--workers=2",
        "--sleep-scale=0.1",  # median sleep 0.27 s: long enough that reordering matters
        f"--db-host={DB['host']}",
        f"--db-port={DB['port']}",
        f"--db-user={DB['user']}",
        f"--db-name={DB['dbname']}",
        f"--summary={summary_file}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    with psycopg.connect(**DB) as conn:
        rows = conn.execute(
            "SELECT eq_task_id, json_out, json_in, eq_status, eq_priority, worker_pool"
            " FROM eq_tasks WHERE json_out <> 'EQ_STOP' ORDER BY time_start, eq_task_id"
        ).fetchall()
    return json.loads(summary_file.read_text()), rows


def test_every_task_ran_once_with_its_ackley_result(run):
    summary, rows = run
    assert len(rows) == POINTS and summary["completed"] == POINTS
    assert {r[3] for r in rows} == {2}  # eqsql TaskStatus.COMPLETE
    X = np.array([json.loads(r[1])["x"] for r in rows])
    y = np.array([json.loads(r[2]) for r in rows])
    np.testing.assert_allclose(y, ackley(X), rtol=1e-12)
    assert {r[5] for r in rows} == {f"pool{i}" for i in range(POOLS)}
    assert summary["best_y"] == pytest.approx(y.min())


def test_reprioritized_after_every_batch(run):
    summary, _ = run
    reps = summary["reprioritizations"]
    assert [r["completed"] for r in reps] == list(range(BATCH, POINTS, BATCH))[: len(reps)]
    assert len(reps) >= 3
    for rep in reps:
        assert rep["affected"], rep["completed"]
        assert set(map(str, rep["affected"])) <= set(rep["priorities"])


def test_eqsql_holds_the_brokers_priorities_and_workers_follow_them(run):
    summary, rows = run
    last_update: dict[int, int] = {}
    for r, rep in enumerate(summary["reprioritizations"]):
        for task_id in rep["affected"]:
            last_update[task_id] = r
    for r, rep in enumerate(summary["reprioritizations"]):
        group = [(pos, row) for pos, row in enumerate(rows) if last_update.get(row[0]) == r]
        for _, row in group:
            assert row[4] == rep["priorities"][str(row[0])]
        if len(group) >= 5:
            # started later <=> lower priority (concurrent pops may swap neighbours)
            rho = spearmanr([pos for pos, _ in group], [row[4] for _, row in group]).statistic
            assert rho < -0.8, (r, rho)
    never = [row for row in rows if row[0] not in last_update]
    assert all(row[4] == 0 for row in never)
