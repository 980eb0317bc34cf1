"""Buffered decisions as `routing_decision` line protocol (docs/metric-contract.md).

One line per decision. Its series is the destination the job was routed to (tag
`destination_id`), its plain fields that destination's predictions, and every candidate's
predictions are JSON arrays in string fields (`candidates`, `candidate_*`, in TPV's order;
decoded by `metric_contract.decision_points`). An earlier layout wrote one point per
candidate: InfluxDB then parsed and indexed tens of lines per job, and on a host that runs
both, it took as much CPU as the broker's ranking (the decision log halved `/process_data`
throughput in `benchmarks.latency`; docs/api.md, "The decision log's cost").

Runs in the writer, off the request path but in the broker's process, so what every decision
of one tool, mode and candidate list within one metrics view shares (the candidates' ids, run
times and P(success), the series key of each destination that could be used) is formatted
once and kept; a decision then costs one `%` operation per array, in C. `transfer_s`,
`wait_s` and `metric_age_s` are whole seconds, rounded (+ 0.5, then `%d`): a second is finer
than any of these predictions. `run_s` has 3 decimals, `p_success` 6. A number without the `i`
suffix is a float in line protocol, so `12` is the float field 12.0. A tool or destination id
that line protocol cannot carry makes its decision unwritable (`LineProtocolError`).

`attempt` is 1 + the decisions of the same job id this process has formatted before (a broker
restart, or a job not seen among the last `REMEMBERED_JOBS`, starts again at 1; consumers that
need exactness order a job's decisions by time). `decision` is this process's random id and a
sequence number. Timestamps are kept strictly increasing, so two decisions of the same series
never share one (InfluxDB would keep only the last).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Sequence
from itertools import repeat
from operator import add, is_

from broker.decisions.log import Decision
from broker.ranking.pool import Pool
from metric_contract import measurements as mc
from metric_contract.lineprotocol import series_key, string_field

REMEMBERED_JOBS = 100_000  # job ids whose attempts are counted (the oldest forgotten first)
_KEPT_MAX = 4096  # candidate lists whose formatting is kept (a new metrics view makes new ones)
_INF = math.inf


def _array(name: str, body: str) -> str:
    return f'{name}="[{body}]"'


def _whole(ints: str, values: tuple[float, ...]) -> str:
    """Values as whole numbers in a JSON array body (`%d` truncates: a caller that wants them
    rounded adds 0.5 first); null for inf (a job that can never fit there; a site that never
    reported). The common case is one `%` operation."""
    if _INF not in values and -_INF not in values:
        return ints % values
    return ",".join("null" if v in (_INF, -_INF) else str(int(v)) for v in values)


class _Kept:
    """What every decision of one tool, mode, chooser and candidate list within one metrics
    view shares; the series key of a used destination is made when first needed."""

    def __init__(self, d: Decision):
        self.estimates = d.estimates  # identity of the view's estimates: a new view, a new one
        self.pools = d.pools
        self._tags = {mc.TOOL_ID: d.tool_id or "", mc.MODE: d.mode, mc.CHOSEN_BY: d.chosen_by}
        self._heads: dict[int, str] = {}
        n = len(d.ids)
        self.ints = ",".join(["%d"] * n)
        self.choice = [string_field(i) for i in d.ids]
        shared = [f"{mc.CANDIDATES}={string_field(json.dumps(list(d.ids), separators=(',', ':')))}"]
        self.run: list[str] = []
        if d.estimates is not None:
            self.run = [
                f"{mc.RUN_S}={e.run.value:.3f},{mc.P_SUCCESS}={e.success.value:.6f},"
                for e in d.estimates
            ]
            runs = tuple(e.run.value + 0.5 for e in d.estimates)
            shared.append(_array(mc.CANDIDATE_RUN_S, _whole(self.ints, runs)))
            p_ok = ",".join(f"{e.success.value:.4f}" for e in d.estimates)
            shared.append(_array(mc.CANDIDATE_P_SUCCESS, p_ok))
        if d.pools is not None:
            # truncated, not rounded: an age read back from it is never below the true one
            times = tuple(p.time_s for p in d.pools)
            shared.append(_array(mc.CANDIDATE_METRIC_TIME_S, _whole(self.ints, times)))
        self.shared = ",".join(shared) + ","

    def head(self, used: int, dest: str) -> str:
        head = self._heads.get(used)
        if head is None:
            tags = {**self._tags, mc.DESTINATION_ID: dest}
            head = self._heads[used] = series_key(mc.DECISIONS, tags) + " "
        return head


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

    def _shared(self, d: Decision) -> _Kept:
        key = (d.tool_id, d.mode, d.chosen_by, d.ids, d.pools is None)
        kept = self._kept.get(key)
        if kept is not None and kept.estimates is d.estimates and _same(kept.pools, d.pools):
            return kept
        kept = _Kept(d)
        if len(self._kept) >= _KEPT_MAX:
            self._kept.clear()
        self._kept[key] = kept
        return kept

    def format(self, d: Decision) -> str:
        """The decision's line."""
        kept = self._shared(d)
        used, order = d.used, d.order
        self._seq += 1
        ns = max(int(d.time_s * 1e9), self._last_ns + 1)
        self._last_ns = ns
        parts = [
            kept.head(used, d.ids[used]),
            f"{mc.BROKER_RANK}={order.index(used)}i,{mc.BROKER_CHOICE}={kept.choice[order[0]]},",
            kept.run[used] if kept.run else "",
            kept.shared,
            _array(mc.BROKER_ORDER, kept.ints % tuple(order)),
            ",",
        ]
        if d.transfer_s is not None and d.wait_s is not None and d.pools is not None:
            n = len(d.ids)
            # whole seconds, rounded: + 0.5 here, `%d` truncates (C loops, no Python per value)
            transfers = tuple(map(add, d.transfer_s, repeat(0.5, n)))
            waits = tuple(map(add, d.wait_s, repeat(0.5, n)))
            parts.append(f"{mc.TRANSFER_S}=%d," % transfers[used])
            if waits[used] != _INF:
                parts.append(f"{mc.WAIT_S}=%d," % waits[used])
            metric_time = d.pools[used].time_s
            if metric_time != -_INF:  # the site has reported
                parts.append(f"{mc.METRIC_AGE_S}=%d," % (d.time_s - metric_time + 0.5))
            parts.append(
                f"{_array(mc.CANDIDATE_TRANSFER_S, kept.ints % transfers)},"
                f"{_array(mc.CANDIDATE_WAIT_S, _whole(kept.ints, waits))},"
            )
        parts.append(
            f'{mc.ATTEMPT}={self._attempt(d.job_id)}i,{mc.DECISION}="{self._run}-{self._seq}",'
            f"{mc.JOB_ID}={d.job_id}i {ns}"
        )
        return "".join(parts)


def _same(kept: Sequence[Pool] | None, pools: Sequence[Pool] | None) -> bool:
    """The same pools: the same list, or lists of the same (per-view) pool objects."""
    if kept is pools:
        return True
    if kept is None or pools is None or len(kept) != len(pools):
        return False
    return all(map(is_, kept, pools))
