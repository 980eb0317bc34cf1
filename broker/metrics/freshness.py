"""When a metric point still describes the present.

A drained queue writes no row and an unreachable site sends nothing, so an old point is not a
statement about now: it is current only while it is at most `metrics.staleness_s` old.
"""


def current_since(now_s: float, staleness_s: float) -> float:
    """The oldest time a point may be taken at and still count at `now_s` (for a loop over
    many points: compare each with this once)."""
    return now_s - staleness_s


def is_current(time_s: float, now_s: float, staleness_s: float) -> bool:
    """Whether a point taken at `time_s` still counts at `now_s`."""
    return time_s >= current_since(now_s, staleness_s)
