"""Read-only access to Galaxy's PostgreSQL for the Telegraf exec collectors.

Both job collectors (`job_outcomes`, `attempt_outcomes`) open one read-only connection per run
and turn every database failure into one `CollectorError` line: unreachable (transient, exit 3),
a missing table (wrong database or search_path: fix the config, exit 2), anything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from collectors.errors import EXIT_CONFIG, CollectorError


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def galaxy_cursor(dsn: str, timeout_s: float) -> Iterator[Any]:
    """A cursor on a read-only connection to Galaxy's database, closed on leaving."""
    try:
        import psycopg
    except ImportError:
        raise CollectorError(
            "psycopg is not installed (pip install 'psycopg[binary]')", EXIT_CONFIG
        ) from None
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s))) as conn:
            conn.read_only = True
            with conn.cursor() as cur:
                yield cur
    except psycopg.OperationalError as exc:
        raise CollectorError(f"Galaxy database is unreachable: {_first_line(exc)}") from None
    except psycopg.errors.UndefinedTable as exc:
        raise CollectorError(
            f"Galaxy database lacks a table ({_first_line(exc)}): wrong database or search_path?",
            EXIT_CONFIG,
        ) from None
    except psycopg.Error as exc:
        raise CollectorError(f"querying the Galaxy database failed: {_first_line(exc)}") from None
