"""Progress on long commands: a bar with the time left on a terminal, nothing otherwise."""

from __future__ import annotations

import io

from broker.progress import bar, is_terminal, track


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_with_the_count_and_the_time_left():
    out = Terminal()
    with bar(4, "eval", file=out) as b:
        b.update(2)
        b.refresh()  # what the terminal shows once the bar's minimum interval has passed
        text = out.getvalue()
    assert "eval" in text and "2/4" in text and "50%" in text
    assert "00:00<00:00" in text  # "[elapsed<remaining, rate]": the estimate of the time left
    out = Terminal()
    assert list(track(iter("abcd"), 4, "eval", file=out)) == list("abcd")
    assert "0/4" in out.getvalue()


def test_not_a_terminal_gets_nothing_and_the_work_still_runs():
    out = io.StringIO()
    with bar(3, "simulate", file=out) as b:
        b.update(3)
    assert list(track(range(3), 3, "x", file=out)) == [0, 1, 2]
    assert out.getvalue() == ""
    assert not is_terminal(None) and not is_terminal(out) and is_terminal(Terminal())
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed)
