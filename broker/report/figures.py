"""The report's figures, from joined attempts (read.py). docs/report.md defines each one.

- Prediction error per term (wait, run, total), of the candidate the attempt ran at:
  `median_abs_error_s` = median |predicted - actual|; `bias_s` = median(predicted - actual)
  (positive: the broker expected longer than it took); `within_2x` = share of attempts whose
  predicted/actual ratio is within [1/2, 2], both sides floored at `FLOOR_S` so a 0 s queue
  predicted as 0.4 s counts as right. The actual wait is Galaxy's queue time (queued ->
  running), which includes staging the inputs, so the wait and transfer predictions are
  compared together for `total` only: predicted total = transfer + wait + run, actual =
  queue + run.
- Calibration of P(success): attempts whose state counts for the success model (ok, error,
  failed: a deleted job is the user's doing), in `BINS` equal bins of the predicted
  probability: mean predicted, observed ok rate, count; and the Brier score.
- First choice differed: the share of decisions (in the window) routed elsewhere than the
  broker's rank 0.
- Turnaround: for attempts that ran at the broker's first choice, actual vs predicted total
  (median and mean); the same for the others, for comparison.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from statistics import fmean, median
from typing import Any

import metric_contract.measurements as mc
from broker.report.read import Decision, Log, Pair, join

FLOOR_S = 1.0
BINS = 10
OVERALL = "all"

TERMS: dict[str, tuple[Callable[[Pair], float], Callable[[Pair], float]]] = {
    # term -> (predicted, actual); only pairs with a candidate reach these
    "wait": (lambda p: p.candidate.wait_s, lambda p: p.outcome.queue_s),  # type: ignore[union-attr]
    "run": (lambda p: p.candidate.run_s, lambda p: p.outcome.run_s),  # type: ignore[union-attr]
    "total": (lambda p: p.candidate.total_s, lambda p: p.outcome.total_s),  # type: ignore[union-attr]
}


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, digits)


def error_stats(predicted: list[float], actual: list[float]) -> dict[str, Any]:
    pairs = [(p, a) for p, a in zip(predicted, actual, strict=True) if math.isfinite(p + a)]
    if not pairs:
        return {"n": 0, "median_abs_error_s": None, "bias_s": None, "within_2x": None}
    within = sum(1 for p, a in pairs if 0.5 <= max(p, FLOOR_S) / max(a, FLOOR_S) <= 2.0)
    return {
        "n": len(pairs),
        "median_abs_error_s": _round(median(abs(p - a) for p, a in pairs)),
        "bias_s": _round(median(p - a for p, a in pairs)),
        "within_2x": _round(within / len(pairs), 4),
    }


def prediction_errors(pairs: list[Pair]) -> dict[str, dict[str, Any]]:
    usable = [p for p in pairs if p.candidate is not None]
    return {
        term: error_stats([pred(p) for p in usable], [act(p) for p in usable])
        for term, (pred, act) in TERMS.items()
    }


def _counts(pair: Pair) -> bool:
    return pair.outcome.state in mc.OK_STATES + mc.ERROR_STATES


def calibration(pairs: list[Pair], bins: int = BINS) -> dict[str, Any]:
    rows = [
        (p.candidate.p_success, 1.0 if p.outcome.state in mc.OK_STATES else 0.0)
        for p in pairs
        if p.candidate is not None and _counts(p) and math.isfinite(p.candidate.p_success)
    ]
    table = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(q, y) for q, y in rows if lo <= q < hi or (b == bins - 1 and q == hi)]
        if inside:
            table.append(
                {
                    "bin": [round(lo, 3), round(hi, 3)],
                    "count": len(inside),
                    "mean_predicted": _round(fmean(q for q, _ in inside), 4),
                    "observed_rate": _round(fmean(y for _, y in inside), 4),
                }
            )
    brier = fmean((q - y) ** 2 for q, y in rows) if rows else None
    return {"n": len(rows), "brier": _round(brier, 4), "bins": table}


def first_choice_differed(decisions: Iterable[Decision]) -> dict[str, Any]:
    n = differed = 0
    for d in decisions:
        used, first = d.used, d.first_choice
        if used is None or first is None:
            continue
        n += 1
        differed += used.destination_id != first.destination_id
    return {"decisions": n, "differed": differed, "share": _round(differed / n, 4) if n else None}


def turnaround(pairs: list[Pair]) -> dict[str, Any]:
    def summary(group: list[Pair]) -> dict[str, Any]:
        group = [p for p in group if p.candidate is not None]
        if not group:
            return {"n": 0}
        pred = [p.candidate.total_s for p in group]  # type: ignore[union-attr]
        act = [p.outcome.total_s for p in group]
        return {
            "n": len(group),
            "median_predicted_s": _round(median(pred)),
            "median_actual_s": _round(median(act)),
            "mean_predicted_s": _round(fmean(pred)),
            "mean_actual_s": _round(fmean(act)),
        }

    return {
        "broker_choice_used": summary([p for p in pairs if p.broker_choice_used]),
        "other_choice_used": summary([p for p in pairs if not p.broker_choice_used]),
    }


def _by_destination(pairs: list[Pair]) -> dict[str, list[Pair]]:
    groups: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        groups[p.outcome.destination_id].append(p)
    return dict(sorted(groups.items()))


def build_report(log: Log, since_s: float) -> dict[str, Any]:
    pairs, unmatched = join(log.decisions, log.outcomes)
    in_window = [d for d in log.decisions if d.time_ns >= log.window_start_ns]
    decisions_by_used: dict[str, list[Decision]] = defaultdict(list)
    for d in in_window:
        if d.used is not None:
            decisions_by_used[d.used.destination_id].append(d)
    by_mode: dict[str, list[Decision]] = defaultdict(list)
    for d in in_window:
        by_mode[d.mode or "unknown"].append(d)

    def section(group_pairs: list[Pair], group_decisions: list[Decision]) -> dict[str, Any]:
        return {
            "attempts": len(group_pairs),
            "errors": prediction_errors(group_pairs),
            "calibration": calibration(group_pairs),
            "first_choice_differed": first_choice_differed(group_decisions),
            "turnaround": turnaround(group_pairs),
        }

    grouped = _by_destination(pairs)
    destinations = sorted(set(grouped) | set(decisions_by_used))
    return {
        "since_s": since_s,
        "decisions": len(in_window),
        "outcomes": len(log.outcomes),
        "attempts_joined": len(pairs),
        "outcomes_without_decision": unmatched,
        "attempts_not_a_candidate": sum(1 for p in pairs if p.candidate is None),
        OVERALL: section(pairs, in_window),
        "by_mode": {m: first_choice_differed(ds) for m, ds in sorted(by_mode.items())},
        "destinations": {
            d: section(grouped.get(d, []), decisions_by_used.get(d, [])) for d in destinations
        },
    }
