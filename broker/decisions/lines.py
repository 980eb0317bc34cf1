"""Buffered decisions as `routing_decision` line protocol (docs/metric-contract.md).

Runs in the writer, off the request path, but in the broker's process: what it costs is taken
from the requests all the same, so it is written for speed. A decision of n candidates is n
lines; what they share with the next decision of the same tool and candidates (tags, run time
and P(success), which change only with the metrics) is formatted once into a template that one
`%` operation fills with the rest, in C rather than line by line. Even so, formatting costs
about a quarter of a request's instructions for 50 candidates (callgrind,
`benchmarks.decision_log_instructions`: +24.7% per request with `transfer_s`, `wait_s` and
`metric_age_s` at three decimals, +25.5% with them in whole seconds; buffering on the request
path alone +1.4%): the log's 5% target is not met. The per-decision predictions `transfer_s`,
`wait_s` and `metric_age_s` are written in whole seconds, rounded (`%d`); that did not make the
formatting cheaper, as had been expected, and stays only because a second is finer than any of
these predictions (whose smallest term, the dispatch wait, is tens of seconds). `run_s`
(3 decimals) and `p_success` (6) are formatted once per metrics view. A number without the `i`
suffix is a float in line protocol, so `12` is the float field 12.0. Tags are escaped by the
contract's codec (`series_key`); a tool or destination id that line protocol cannot carry makes
its decision unwritable (`LineProtocolError`).

`attempt` is 1 + the decisions of the same job id this process has formatted before (a broker
restart, or a job not seen among the last `REMEMBERED_JOBS`, starts again at 1; consumers that
need exactness order a job's decisions by time). `decision` is this process's random id and a
sequence number. Timestamps are kept strictly increasing, so two decisions of the same series
never share one (InfluxDB would keep only the last).
"""

from __future__ import annotations

import math
import secrets
from itertools import chain, repeat
from operator import add, attrgetter, sub
from typing import NamedTuple

from broker.decisions.log import Decision
from metric_contract import measurements as mc
from metric_contract.lineprotocol import series_key

REMEMBERED_JOBS = 100_000  # job ids whose attempts are counted (the oldest forgotten first)
_KEPT_MAX = 4096  # candidate lists whose formatting is kept (a new metrics view makes new ones)
_INF = math.inf
_FALSE, _TRUE = "false", "true"
_time_s = attrgetter("time_s")
# the fields that change per decision, after the candidate's fixed part; a candidate whose
# site never reported gets no metric_age_s (`%.0s` takes its value and writes nothing)
_VARYING = f"{mc.BROKER_RANK}=%di,{mc.USED}=%s,{mc.TRANSFER_S}=%d,{mc.WAIT_S}=%d,"
_AGED = (_VARYING + f"{mc.METRIC_AGE_S}=%d,%s", _VARYING + "%.0s%s")


class _Kept(NamedTuple):
    """What every decision of one tool, mode, chooser and candidate list within one metrics
    view shares: per candidate its series key and fixed fields, and all of them joined into
    one template for the varying fields."""

    estimates: object  # identity of the view's estimates: a new view, a new _Kept
    heads: list[str]  # "<series key> run_s=...,p_success=...," per candidate
    template: str  # every candidate's line, `_AGED` placeholders


class DecisionLines:
    def __init__(self) -> None:
        self._run = secrets.token_hex(6)  # this process: decision ids never repeat across runs
        self._seq = 0
        self._last_ns = 0
        self._attempts: dict[int, int] = {}
        self._kept: dict[tuple, _Kept] = {}

    def _attempt(self, job_id: int) -> int:
        attempts = self._attempts
        attempt = attempts.pop(job_id, 0) + 1
        attempts[job_id] = attempt  # re-inserted: the most recent job ids are kept
        if len(attempts) > REMEMBERED_JOBS:
            del attempts[next(iter(attempts))]
        return attempt

    def _heads(self, d: Decision) -> list[str]:
        tags = {mc.TOOL_ID: d.tool_id or "", mc.MODE: d.mode, mc.CHOSEN_BY: d.chosen_by}
        heads = []
        for i, dest in enumerate(d.ids):
            head = series_key(mc.DECISIONS, {**tags, mc.DESTINATION_ID: dest}) + " "
            if d.estimates is not None:
                est = d.estimates[i]
                head += f"{mc.RUN_S}={est.run.value:.3f},{mc.P_SUCCESS}={est.success.value:.6f},"
            heads.append(head)
        return heads

    def _shared(self, d: Decision) -> _Kept:
        key = (d.tool_id, d.mode, d.chosen_by, d.ids)
        kept = self._kept.get(key)
        if kept is not None and kept.estimates is d.estimates:
            return kept
        heads = self._heads(d)
        never = (
            [p.time_s == -_INF for p in d.pools] if d.pools is not None else [False] * len(heads)
        )
        template = "\n".join(
            h.replace("%", "%%") + _AGED[missing] for h, missing in zip(heads, never, strict=True)
        )
        kept = _Kept(d.estimates, heads, template)
        if len(self._kept) >= _KEPT_MAX:
            self._kept.clear()
        self._kept[key] = kept
        return kept

    def format(self, d: Decision) -> str:
        """The decision's lines (one per candidate, in TPV's order), joined by newlines."""
        kept = self._shared(d)
        self._seq += 1
        ns = max(int(d.time_s * 1e9), self._last_ns + 1)
        self._last_ns = ns
        tail = (
            f'{mc.ATTEMPT}={self._attempt(d.job_id)}i,{mc.DECISION}="{self._run}-{self._seq}",'
            f"{mc.JOB_ID}={d.job_id}i {ns}"
        )
        n = len(d.ids)
        ranks = sorted(range(n), key=d.order.__getitem__)  # the inverse: each one's place
        used = [_FALSE] * n
        used[d.used] = _TRUE
        if d.transfer_s is None or d.wait_s is None or d.pools is None:  # the ranking failed
            return "\n".join(
                f"{h}{mc.BROKER_RANK}={r}i,{mc.USED}={u},{tail}"
                for h, r, u in zip(kept.heads, ranks, used, strict=True)
            )
        # whole seconds, rounded: + 0.5 here, `%d` truncates (C loops, no Python per value)
        ages = list(map(sub, repeat(d.time_s + 0.5, n), map(_time_s, d.pools)))
        transfers = map(add, d.transfer_s, repeat(0.5, n))
        if _INF not in d.wait_s:  # the common case: one formatting operation
            waits = map(add, d.wait_s, repeat(0.5, n))
            values = zip(ranks, used, transfers, waits, ages, repeat(tail, n), strict=True)
            return kept.template % tuple(chain.from_iterable(values))
        lines = []  # some candidate cannot fit the job: no wait_s
        for h, r, u, t, w, a in zip(
            kept.heads, ranks, used, transfers, d.wait_s, ages, strict=True
        ):
            line = f"{h}{mc.BROKER_RANK}={r}i,{mc.USED}={u},{mc.TRANSFER_S}=%d," % t
            if w != _INF:
                line += f"{mc.WAIT_S}=%d," % (w + 0.5)
            if a != _INF:
                line += f"{mc.METRIC_AGE_S}=%d," % a
            lines.append(line + tail)
        return "\n".join(lines)
