"""One exception type for every failure an operator must act on, and the CLI wrapper around it.

Telegraf logs a collector's stderr and its exit status; a systemd timer shows them in the
journal. Either way one readable line beats a traceback, so every entry point runs through
`run_cli`, which turns a `CollectorError` (and Ctrl-C) into a single stderr line and an exit
status, and leaves tracebacks only for genuine bugs. A problem that skips one record but not
the run is `warn`ed in the same one-line form.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TextIO

EXIT_OK = 0
EXIT_CONFIG = 2  # bad configuration or arguments: fix the config, retrying will not help
EXIT_UNAVAILABLE = 3  # a service (RabbitMQ, HTCondor, PostgreSQL) cannot be reached: transient


class CollectorError(Exception):
    """A failure with a message meant for the operator; `exit_code` says what kind."""

    def __init__(self, message: str, exit_code: int = EXIT_UNAVAILABLE):
        super().__init__(message)
        self.exit_code = exit_code


def run_cli(prog: str, main: Callable[[], int]) -> int:
    try:
        return main()
    except CollectorError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return 130


def warn(prog: str, message: str) -> None:
    """One warning line on stderr, named like `run_cli`'s error line (`prog: warning: ...`)."""
    print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)


def emit(lines: Sequence[str], out: TextIO | None = None) -> int:
    """Print a run's line protocol for Telegraf (nothing at all when there is none) and say OK."""
    stream = out or sys.stdout
    if lines:
        stream.write("\n".join(lines) + "\n")
    stream.flush()
    return EXIT_OK
