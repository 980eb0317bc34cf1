"""Known traffic for the report's end-to-end test: jobs with their attempts as Galaxy
records them (in Galaxy's own tables) and the routing decisions the broker logged for them (in
InfluxDB), so that the test can compute every figure of `tpv-broker report` by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import psycopg

import metric_contract.measurements as mc
from metric_contract.lineprotocol import format_point
from tests.support.decisions import decision_point
from tests.support.galaxy_schema import add_job, ago

BWA = "toolshed.g2.bx.psu.edu/repos/devteam/bwa/bwa_mem/0.7.17.2"
CAT = "cat1"
EU, UK = "pulsar_eu", "pulsar_uk"


@dataclass
class Attempt:
    """One attempt: where it ran, what the broker predicted there, what Galaxy recorded."""

    dest: str
    first_choice: str  # the broker's rank 0 in this attempt's decision
    mode: str
    wait: float  # predicted at `dest` (and below)
    run: float
    transfer: float
    p: float
    queue_s: float | None  # actual; None: the attempt has not finished
    run_s: float
    end: str  # how it ended: ok, error, deleted, resubmitted, running
    ran: bool = True  # it reached `running`
    runtime_metric: float | None = None  # Galaxy's runtime_seconds (final attempts only)


JOBS: dict[str, tuple[str, list[Attempt]]] = {
    "j1": (BWA, [Attempt(EU, EU, "enforce", 50, 500, 10, 0.9, 60, 600, "ok")]),
    # runtime_seconds wins over the history's running -> ok span for the final attempt
    "j2": (
        BWA,
        [Attempt(EU, EU, "enforce", 100, 1000, 0, 0.9, 300, 1100, "ok", runtime_metric=1100)],
    ),
    # shadow: routed by the fallback to UK, the broker wanted EU
    "j3": (CAT, [Attempt(UK, EU, "shadow", 10, 15, 2, 0.7, 30, 20, "error")]),
    # resubmitted from EU to UK: two attempts, the first counts as failed
    "j4": (
        BWA,
        [
            Attempt(EU, EU, "enforce", 30, 800, 20, 0.85, 20, 100, "resubmitted"),
            Attempt(UK, UK, "enforce", 60, 850, 40, 0.6, 40, 880, "ok", runtime_metric=880),
        ],
    ),
    "j5": (BWA, [Attempt(EU, EU, "enforce", 40, 700, 0, 0.9, None, 0, "running")]),
    # deleted while queued: never ran; left out of the calibration (the user's doing)
    "j6": (CAT, [Attempt(UK, UK, "enforce", 500, 15, 1, 0.8, 900, 0, "deleted", ran=False)]),
}
OTHER = {EU: UK, UK: EU}


def populate(dsn: str, influxdb) -> dict[str, int]:
    """Galaxy rows and the decision log for JOBS; returns Galaxy's job ids."""
    from collectors.attempts import _ns as galaxy_ns

    ids, lines = {}, []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n, (name, (tool, attempts)) in enumerate(JOBS.items()):
            t = ago(10 * 3600 - n * 600)  # created 10 h ago and later, 10 min apart
            created, history, decisions = t, [], []
            for a in attempts:
                decisions.append((t + timedelta(seconds=2), a))
                history.append(("queued", t + timedelta(seconds=5)))
                t += timedelta(seconds=5)
                if a.end == "running":
                    history.append(("running", t + timedelta(seconds=30)))
                    break
                if a.ran:
                    history.append(("running", t + timedelta(seconds=a.queue_s)))
                    # history span of the run: longer than the metric when one is recorded
                    span = a.run_s + (50 if a.runtime_metric is not None else 0)
                    t += timedelta(seconds=a.queue_s + span)
                else:
                    t += timedelta(seconds=a.queue_s)
                history.append(("resubmitted" if a.end == "resubmitted" else a.end, t))
            metric = attempts[-1].runtime_metric
            ids[name] = add_job(conn, tool, attempts[-1].dest, history, metric, created)
            for k, (at, a) in enumerate(decisions):
                decision = f"{name}-{k}"
                cands = {
                    a.dest: (a.wait, a.run, a.transfer, a.p),
                    OTHER[a.dest]: (a.wait * 3, a.run * 2, a.transfer + 5, 0.5),
                }
                order = [a.first_choice, OTHER[a.first_choice]]
                rows = [
                    dict(destination_id=dest, broker_rank=order.index(dest),
                         transfer_s=float(transfer), wait_s=float(wait), run_s=float(run),
                         p_success=float(p), metric_age_s=12.5)
                    for dest, (wait, run, transfer, p) in cands.items()
                ]  # fmt: skip
                chosen_by = mc.BY_BROKER if a.mode == "enforce" else mc.BY_FALLBACK
                point = decision_point(
                    ids[name], decision, galaxy_ns(at), a.dest, rows, tool_id=tool,
                    mode=a.mode, chosen_by=chosen_by, attempt=k + 1,
                )  # fmt: skip
                lines.append(
                    format_point(point.measurement, point.tags, point.fields, point.time_ns)
                )
    influxdb.write(lines)
    return ids


def finished():
    """(job name, attempt number, Attempt) of every finished attempt."""
    return [
        (name, k + 1, a)
        for name, (_, attempts) in JOBS.items()
        for k, a in enumerate(attempts)
        if a.end != "running"
    ]
