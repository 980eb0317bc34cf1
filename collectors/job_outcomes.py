"""Galaxy server: per tool and destination, how many jobs ended ok and how many failed, over a
look-back window, as `job_outcomes` line protocol for Telegraf's exec input plugin.

    python -m collectors.job_outcomes [--dsn "host=... dbname=galaxy"] [--window-days 30]

The broker turns these counts into a success probability per tool and destination (the
`P_success` term of the ranking). Reads Galaxy's `job` table only (tool_id, destination_id,
state, update_time), with a read-only transaction, so it is safe against the production DB.

Choices, and why:
- Terminal states only: `ok` counts as ok; `error` and `failed` as error. `deleted`/`stopped`
  are the user's decision, not the destination's fault, so they are left out.
- The window is on `update_time` (when the job reached its final state); Galaxy stores it as
  UTC without a time zone, hence `now() AT TIME ZONE 'UTC'`.
- Jobs without a destination (never dispatched) are skipped.
- No timestamp: Telegraf stamps the points with the collection time, like gxadmin's output.
- A tool or destination id line protocol cannot carry as a tag value (a line break, a trailing
  backslash: see `metric_contract.lineprotocol`) is skipped with one warning on stderr naming
  it; writing it would break that line, and with a newline inject a second, forged one.
- The schema is taken from the DSN (`options=-csearch_path=...`) so the same SQL runs against
  Galaxy's `public` schema and a test schema.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import TextIO

from collectors.errors import emit, run_cli, warn
from collectors.galaxy_db import galaxy_cursor
from collectors.settings import add_config_argument, load_settings, overrides_from
from metric_contract.lineprotocol import LineProtocolError, format_point
from metric_contract.measurements import (
    DESTINATION_ID,
    ERROR,
    ERROR_STATES,
    OK,
    OK_STATES,
    OUTCOMES,
    TOOL_ID,
    WINDOW_DAYS,
)

QUERY = """
SELECT tool_id,
       destination_id,
       count(*) FILTER (WHERE state = ANY(%(ok)s))    AS ok,
       count(*) FILTER (WHERE state = ANY(%(error)s)) AS error
  FROM job
 WHERE state = ANY(%(terminal)s)
   AND destination_id IS NOT NULL AND destination_id <> ''
   AND tool_id IS NOT NULL AND tool_id <> ''
   AND update_time > (now() AT TIME ZONE 'UTC') - make_interval(days => %(days)s)
 GROUP BY tool_id, destination_id
 ORDER BY destination_id, tool_id
"""


def format_lines(rows: Iterable[tuple[str, str, int, int]], window_days: int) -> list[str]:
    """Rows of (tool_id, destination_id, ok, error) -> line protocol, integer fields. A row
    whose ids line protocol cannot carry is left out, with a warning naming it."""
    lines = []
    for tool_id, destination_id, ok, error in rows:
        try:
            line = format_point(
                OUTCOMES,
                {DESTINATION_ID: destination_id, TOOL_ID: tool_id},
                {OK: int(ok), ERROR: int(error), WINDOW_DAYS: int(window_days)},
            )
        except LineProtocolError as exc:
            warn("job_outcomes", f"skipped the row of destination {destination_id!r}: {exc}")
            continue
        lines.append(line)
    return lines


def fetch_rows(dsn: str, window_days: int, timeout_s: float = 10.0) -> list[tuple]:
    with galaxy_cursor(dsn, timeout_s) as cur:
        cur.execute(
            QUERY,
            {
                "ok": list(OK_STATES),
                "error": list(ERROR_STATES),
                "terminal": list(OK_STATES + ERROR_STATES),
                "days": window_days,
            },
        )
        return cur.fetchall()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="job_outcomes",
        description="Print ok/error job counts per tool and destination (Telegraf exec).",
    )
    add_config_argument(p)
    p.add_argument("--dsn", dest="postgres_dsn", help="libpq conninfo or postgresql:// URI")
    p.add_argument("--window-days", type=int, help="look-back window in days (default 30)")
    return p


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = overrides_from(args)

    def run() -> int:
        settings = load_settings(args.config, overrides=overrides)
        rows = fetch_rows(settings.postgres_dsn, settings.window_days, settings.timeout_s)
        return emit(format_lines(rows, settings.window_days), out)

    return run_cli("job_outcomes", run)


if __name__ == "__main__":
    sys.exit(main())
