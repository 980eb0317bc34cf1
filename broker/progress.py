"""Progress of the long commands (`simulate`, `eval-success`, the decision-quality benchmarks).

On a terminal, a bar on stderr with the rate and an estimate of the time left (tqdm), so that a
run of minutes says how far it is; when stderr is not a terminal (a pipe, a log file, CI, a
test) nothing at all is written, so the output the commands print on stdout (tables, the JSON
line last) and what a log collects stay exactly as they were. One home for the choice, so the
commands cannot disagree about when to be quiet.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def is_terminal(stream: IO[str] | None) -> bool:
    """Whether `stream` is attached to a terminal (a stream without `isatty` is not)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # a closed or odd stream: not a terminal
        return False


def bar(total: int, desc: str, unit: str = "run", file: IO[str] | None = None) -> tqdm:
    """A progress bar of `total` steps on `file` (default stderr), disabled unless that is a
    terminal; use it as a context manager and call `update(n)`."""
    stream = sys.stderr if file is None else file
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=stream,
        disable=not is_terminal(stream),
        leave=False,  # the bar goes once the run is over: the result is what stays on screen
        dynamic_ncols=True,
    )


def track(
    items: Iterable[T], total: int, desc: str, unit: str = "item", file: IO[str] | None = None
) -> Iterable[T]:
    """`items`, advancing a `bar` by one per item taken."""
    with bar(total, desc, unit, file) as b:
        for item in items:
            yield item
            b.update(1)
