"""Reading one `routing_decision` point's candidates back (docs/metric-contract.md).

A decision is one point: the destination used is its tag and its predictions are plain fields,
and every candidate's predictions are JSON arrays in string fields, in the order of the
`candidates` array (TPV's order). One point rather than one per candidate because InfluxDB
then ingests one line per job instead of tens: with a point per candidate, a 50-candidate
decision log took the broker's host as much CPU as the ranking itself (docs/api.md, "The
decision log's cost"). This module is the one decoder, for the report and the tests;
standard library only, like the rest of the contract.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import NamedTuple

from metric_contract import measurements as mc


class CandidatePrediction(NamedTuple):
    """One candidate of a decision; NaN where the point has no value (the ranking failed, the
    job can never fit there (wait), or the site never reported (metric age))."""

    destination_id: str
    broker_rank: int | None
    transfer_s: float
    wait_s: float
    run_s: float
    p_success: float
    metric_age_s: float


def _numbers(fields: Mapping[str, object], key: str, n: int) -> list[float]:
    """A candidate array as floats (NaN for null); all NaN when absent or malformed."""
    raw = fields.get(key)
    values = None
    if isinstance(raw, str):
        try:
            values = json.loads(raw)
        except ValueError:
            values = None
    if not isinstance(values, list) or len(values) != n:
        return [math.nan] * n
    return [
        float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan
        for v in values
    ]


def _order(fields: Mapping[str, object], n: int) -> list[int | None]:
    """Each candidate's place in the broker's answer, from `broker_order`; None when absent or
    not a permutation of the candidates."""
    raw = fields.get(mc.BROKER_ORDER)
    try:
        order = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        order = None
    if not isinstance(order, list) or sorted(order) != list(range(n)):
        return [None] * n
    ranks: list[int | None] = [None] * n
    for place, position in enumerate(order):
        ranks[position] = place
    return ranks


def candidates_of(
    fields: Mapping[str, object], time_ns: int | None = None
) -> list[CandidatePrediction]:
    """The decision's candidates in TPV's order; empty when `candidates` is missing or is not
    a JSON array of strings. A malformed prediction array reads as unknown (NaN), not as an
    error: a report over weeks of points should not stop at one. `time_ns`: the point's time,
    which the metric ages are counted from."""
    raw = fields.get(mc.CANDIDATES)
    try:
        ids = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        ids = None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return []
    n = len(ids)
    transfer, wait, run, p_ok, metric_time = (_numbers(fields, k, n) for k in mc.CANDIDATE_FIELDS)
    now = math.nan if time_ns is None else time_ns / 1e9
    rows = zip(ids, _order(fields, n), transfer, wait, run, p_ok, metric_time, strict=True)
    return [
        CandidatePrediction(dest, rank, t, w, r, p, now - when)
        for dest, rank, t, w, r, p, when in rows
    ]
