"""Galaxy server: each finished attempt of the jobs the broker decided on, with its actual queue
wait, run time and final state, as `job_attempt_outcome` line protocol for Telegraf's exec input.

    python -m collectors.attempt_outcomes [--dsn "dbname=galaxy"] [--influx-url URL]
        [--influx-database galaxy] [--decision-window-hours 168]

Why a join: Galaxy keeps only a job's last destination (`job.destination_id`); the broker's
decision log (`routing_decision` in InfluxDB) says where each earlier attempt went. Galaxy's
`job_state_history` says when each attempt queued, ran and ended, and `job_metric_numeric` how
long the final attempt's tool ran. docs/collectors.md has the rules in prose.

The join itself (how a job's history splits into attempts, and which destination and figures
each gets) is `collectors.attempts`; reading the decision log is `collectors.decision_log`;
this module reads Galaxy's database and runs the two.

Only jobs created inside the decision window are joined: for them every decision is in the
window, so the numbering of attempts is exact. The window must be longer than the longest
job lifetime (default 7 days). Unfinished attempts are written once they end.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from collectors.attempts import PROG, Job, attempts_of, outcome_lines
from collectors.decision_log import read_decisions
from collectors.errors import emit, run_cli, warn
from collectors.galaxy_db import galaxy_cursor
from collectors.settings import (
    CollectorSettings,
    add_config_argument,
    load_settings,
    overrides_from,
)

JOBS_SQL = """
SELECT id, tool_id, destination_id, state, create_time, update_time
  FROM job
 WHERE id = ANY(%(ids)s)
   AND tool_id IS NOT NULL AND tool_id <> ''
   AND create_time > (now() AT TIME ZONE 'UTC') - %(hours)s * interval '1 hour'
"""
HISTORY_SQL = """
SELECT job_id, state, create_time
  FROM job_state_history
 WHERE job_id = ANY(%(ids)s) AND create_time IS NOT NULL
 ORDER BY job_id, create_time, id
"""
RUNTIME_SQL = """
SELECT job_id, metric_value
  FROM job_metric_numeric
 WHERE job_id = ANY(%(ids)s) AND plugin = 'core' AND metric_name = 'runtime_seconds'
"""


@dataclass
class GalaxyRecord:
    jobs: list[Job]
    history: dict[int, list[tuple[str, datetime]]]
    runtime_s: dict[int, float]


def fetch_galaxy(
    dsn: str, job_ids: Iterable[int], window_hours: float, timeout_s: float = 10.0
) -> GalaxyRecord:
    params = {"ids": sorted(set(job_ids)), "hours": float(window_hours)}
    with galaxy_cursor(dsn, timeout_s) as cur:
        cur.execute(JOBS_SQL, params)
        jobs = [Job(*row) for row in cur.fetchall()]
        params["ids"] = [job.id for job in jobs]
        cur.execute(HISTORY_SQL, params)
        history: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
        for job_id, state, at in cur.fetchall():
            history[job_id].append((state or "", at))
        cur.execute(RUNTIME_SQL, params)
        runtime_s = {job_id: float(v) for job_id, v in cur.fetchall() if v is not None}
    return GalaxyRecord(jobs, dict(history), runtime_s)


def collect(settings: CollectorSettings) -> list[str]:
    decisions = read_decisions(settings)
    if not decisions:
        return []
    record = fetch_galaxy(
        settings.postgres_dsn, decisions, settings.decision_window_hours, settings.timeout_s
    )
    lines, missing = [], 0
    for job in sorted(record.jobs, key=lambda j: j.id):
        attempts = attempts_of(job, record.history.get(job.id, []), record.runtime_s.get(job.id))
        job_lines, job_missing = outcome_lines(job, attempts, decisions[job.id])
        lines += job_lines
        missing += job_missing
    if missing:
        warn(PROG, f"{missing} finished attempts have no decision in the window and were skipped")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Print each finished attempt of the broker's jobs (Telegraf exec).",
    )
    add_config_argument(p)
    p.add_argument("--dsn", dest="postgres_dsn", help="libpq conninfo or postgresql:// URI")
    p.add_argument("--influx-url", help="InfluxDB 1.x base URL holding the decision log")
    p.add_argument("--influx-database", help="its database (default galaxy)")
    p.add_argument("--influx-username", help="InfluxDB user (password: file or environment)")
    p.add_argument(
        "--decision-window-hours", type=float, help="join jobs created this recently (168)"
    )
    p.add_argument("--timeout", type=float, dest="timeout_s", help="seconds per network step")
    return p


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = overrides_from(args)

    def run() -> int:
        settings = load_settings(args.config, overrides=overrides)
        return emit(collect(settings), out)

    return run_cli(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
