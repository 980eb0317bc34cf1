"""Buffered decisions as `routing_decision` line protocol (docs/metric-contract.md).

Runs in the writer, off the request path, but in the broker's process: what it costs is taken
from the requests all the same, so it is written for speed. A decision of n candidates is n
lines; what a line shares with the next decision of the same tool and candidates (its tags,
the run time and P(success), which change only with the metrics) is formatted once and kept,
and the numbers that change per decision are written with fixed decimals (`%.3f`: several
times cheaper than the shortest round-trip repr, and a millisecond is finer than any of these
predictions). Tags are escaped by the contract's codec (`series_key`); a tool or destination
id that line protocol cannot carry makes its decision unwritable (`LineProtocolError`).

`attempt` is 1 + the decisions of the same job id this process has formatted before (a broker
restart, or a job not seen among the last `REMEMBERED_JOBS`, starts again at 1; consumers that
need exactness order a job's decisions by time). `decision` is this process's random id and a
sequence number. Timestamps are kept strictly increasing, so two decisions of the same series
never share one (InfluxDB would keep only the last).
"""

from __future__ import annotations

import math
import secrets

from broker.decisions.log import Decision
from metric_contract import measurements as mc
from metric_contract.lineprotocol import series_key

REMEMBERED_JOBS = 100_000  # job ids whose attempts are counted (the oldest forgotten first)
_KEPT_MAX = 4096  # formatted candidate lists kept (a new metrics view makes new ones)
_RANKS = [f"{mc.BROKER_RANK}=%di," % r for r in range(1000)]
_N_RANKS = len(_RANKS)
_USED = (f"{mc.USED}=false,", f"{mc.USED}=true,")
_TRANSFER = f"%s{mc.TRANSFER_S}=%.3f,"
_WAIT = f"{mc.WAIT_S}=%.3f,"
_AGE = f"{mc.METRIC_AGE_S}=%.3f,"
_ALL = f"%s{mc.TRANSFER_S}=%.3f,{mc.WAIT_S}=%.3f,{mc.METRIC_AGE_S}=%.3f,%s"


class DecisionLines:
    def __init__(self) -> None:
        self._run = secrets.token_hex(6)  # this process: decision ids never repeat across runs
        self._seq = 0
        self._last_ns = 0
        self._attempts: dict[int, int] = {}
        self._kept: dict[tuple, tuple[object, list[str]]] = {}

    def _attempt(self, job_id: int) -> int:
        attempts = self._attempts
        attempt = attempts.pop(job_id, 0) + 1
        attempts[job_id] = attempt  # re-inserted: the most recent job ids are kept
        if len(attempts) > REMEMBERED_JOBS:
            del attempts[next(iter(attempts))]
        return attempt

    def _static(self, d: Decision) -> list[str]:
        """Per candidate: its series key and the fields fixed for a tool at a destination
        within one metrics view (run time, P(success)), ending where the varying ones start."""
        key = (d.tool_id, d.mode, d.chosen_by, d.ids)
        kept = self._kept.get(key)
        if kept is not None and kept[0] is d.estimates:
            return kept[1]
        tags = {mc.TOOL_ID: d.tool_id or "", mc.MODE: d.mode, mc.CHOSEN_BY: d.chosen_by}
        out = []
        for i, dest in enumerate(d.ids):
            head = series_key(mc.DECISION, {**tags, mc.DESTINATION_ID: dest}) + " "
            if d.estimates is not None:
                est = d.estimates[i]
                head += f"{mc.RUN_S}={est.run.value:.3f},{mc.P_SUCCESS}={est.success.value:.6f},"
            out.append(head)
        if d.estimates is not None:  # without predictions (a failed ranking) nothing is shared
            if len(self._kept) >= _KEPT_MAX:
                self._kept.clear()
            self._kept[key] = (d.estimates, out)
        return out

    def format(self, d: Decision) -> list[str]:
        """The decision's lines, in the broker's order (its first choice first)."""
        static = self._static(d)
        self._seq += 1
        ns = max(int(d.time_s * 1e9), self._last_ns + 1)
        self._last_ns = ns
        tail = (
            f'{mc.ATTEMPT}={self._attempt(d.job_id)}i,{mc.DECISION_ID}="{self._run}-{self._seq}",'
            f"{mc.JOB_ID}={d.job_id}i {ns}"
        )
        used = d.used
        lines = []
        if d.pools is None or d.transfer_s is None or d.wait_s is None:  # the ranking failed
            for rank, i in enumerate(d.order):
                lines.append(static[i] + _rank(rank) + _USED[i == used] + tail)
            return lines
        now = d.time_s
        transfers, waits, pools = d.transfer_s, d.wait_s, d.pools
        inf = math.inf
        for rank, i in enumerate(d.order):
            wait = waits[i]
            age = now - pools[i].time_s
            head = static[i] + (_RANKS[rank] if rank < _N_RANKS else _rank(rank)) + _USED[i == used]
            if wait != inf and age != inf:  # the common case: one formatting operation
                lines.append(_ALL % (head, transfers[i], wait, max(age, 0.0), tail))
                continue
            line = _TRANSFER % (head, transfers[i])
            if wait != inf:
                line += _WAIT % wait
            if age != inf:
                line += _AGE % max(age, 0.0)
            lines.append(line + tail)
        return lines


def _rank(rank: int) -> str:
    return _RANKS[rank] if rank < len(_RANKS) else f"{mc.BROKER_RANK}={rank}i,"
