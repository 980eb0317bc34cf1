"""When a metric point still describes the present.

A drained queue writes no row and an unreachable site sends nothing, so an old point is not a
statement about now: it is current only while it is at most `metrics.staleness_s` old.
"""


def is_current(time_s: float, now_s: float, staleness_s: float) -> bool:
    """Whether a point taken at `time_s` still counts at `now_s`."""
    return now_s - time_s <= staleness_s


def current_since(now_s: float, staleness_s: float) -> float:
    """The same rule as a cutoff, for a loop over many points: a point taken at or after this
    time counts at `now_s` (equal to `is_current` up to the last bit of rounding)."""
    return now_s - staleness_s
