"""ARBO client for workflow engines (Airflow first): ask for ``s``, map the work, report back.

Standard library only, so it installs into any Airflow worker image. The client never breaks a
workflow: when the broker is down, slow or answers an error, ``parallelism`` returns the author's
default ``s`` with a warning, and ``feedback`` logs a warning and returns False.

Airflow pattern (see ``examples/airflow/arbo_dag.py``)::

    arbo = ArboClient("http://broker:8080")

    @task
    def plan(files):                      # just before the heavy task
        return arbo.mapped_arguments("align", files, default_s=8, input_size=total_size(files),
                                     ti=get_current_context()["ti"])

    chunks = plan(files)
    heavy = KubernetesPodOperator.partial(task_id="align", ...).expand(arguments=chunks)
    heavy >> done                         # done has on_success_callback below
    done = EmptyOperator(task_id="done",
                         on_success_callback=arbo.success_callback("align", "align", "plan"))

The callback measures the heavy stage from the Airflow context: ``s`` is the number of mapped
task instances, the duration runs from the first one's start to the last one's end.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
# What a call to the broker may raise: unreachable, HTTP error, bad JSON either way, a missing
# key in the answer. The workflow goes on with its default instead.
_FAILURES = (OSError, ValueError, KeyError, TypeError)
XCOM_KEY = "arbo"


@dataclass(frozen=True)
class Parallelism:
    s: int
    from_broker: bool
    reason: str
    predicted_seconds: float | None = None
    predicted_interval: tuple[float, float] | None = None
    load: float | None = None


def split_evenly(items: Sequence[Any], s: int) -> list[list[Any]]:
    """``items`` in ``min(s, len(items))`` contiguous chunks whose sizes differ by at most one."""
    items = list(items)
    parts = max(1, min(int(s), len(items))) if items else 0
    base, extra = divmod(len(items), parts) if parts else (0, 0)
    out, start = [], 0
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        out.append(items[start : start + size])
        start += size
    return out


class ArboClient:
    def __init__(self, url: str, timeout: float = 5.0, token: str | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token = token

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read())

    def parallelism(
        self,
        task: str,
        default_s: int,
        max_s: int | None = None,
        input_size: float | None = None,
        objective: str | None = None,
        slo: dict[str, float] | None = None,
        site: str | None = None,
    ) -> Parallelism:
        """The broker's ``s`` for ``task``; the default (and a warning) on any failure."""
        body = dict(
            task=task,
            default_s=default_s,
            max_s=max_s,
            input_size=input_size,
            objective=objective,
            slo=slo,
            site=site,
        )
        try:
            answer = self._post("/arbo/parallelism", body)
            interval = answer.get("predicted_interval")
            return Parallelism(
                s=int(answer["s"]),
                from_broker=True,
                reason=str(answer.get("reason", "")),
                predicted_seconds=answer.get("predicted_seconds"),
                predicted_interval=tuple(interval) if interval else None,
                load=answer.get("load"),
            )
        except _FAILURES as exc:
            detail = _error_detail(exc)
            log.warning("ARBO broker unavailable (%s); using default s=%d", detail, default_s)
            return Parallelism(s=default_s, from_broker=False, reason=f"broker error: {detail}")

    def feedback(
        self,
        task: str,
        s: int,
        seconds: float,
        input_size: float | None = None,
        load: float | None = None,
        succeeded: bool = True,
        site: str | None = None,
    ) -> bool:
        """Report one run; False (and a warning) when the broker did not take it."""
        body = dict(
            task=task,
            s=s,
            seconds=seconds,
            input_size=input_size,
            load=load,
            succeeded=succeeded,
            site=site,
        )
        try:
            self._post("/arbo/feedback", body)
            return True
        except _FAILURES as exc:
            log.warning("ARBO feedback for %s not recorded: %s", task, _error_detail(exc))
            return False

    def mapped_arguments(
        self,
        task: str,
        items: Sequence[Any],
        default_s: int,
        ti: Any = None,
        **ask: Any,
    ) -> list[list[Any]]:
        """Ask for ``s`` and split ``items`` into that many argument lists (``.expand`` input).

        With Airflow's ``ti`` the decision (task, s, input size, load) is pushed to XCom, so the
        success callback reports the same input size and load the decision used.
        """
        decision = self.parallelism(task, default_s, **ask)
        chunks = split_evenly(items, decision.s)
        if ti is not None:
            ti.xcom_push(
                key=XCOM_KEY,
                value={
                    "task": task,
                    "s": len(chunks),
                    "input_size": ask.get("input_size"),
                    "load": decision.load,
                    "site": ask.get("site"),
                },
            )
        return chunks

    def success_callback(
        self, task: str, mapped_task_id: str, plan_task_id: str | None = None
    ) -> Callable[[dict[str, Any]], None]:
        """An Airflow ``on_success_callback`` reporting the mapped stage's duration.

        Attach it to a task downstream of the mapped one (or to the DAG): it reads every mapped
        instance of ``mapped_task_id`` from ``context["dag_run"]``. It never raises.
        """

        def callback(context: dict[str, Any]) -> None:
            try:
                run = measure_mapped(context, mapped_task_id)
                if run is None:
                    log.warning("ARBO: no finished instance of %s to report", mapped_task_id)
                    return
                s, seconds, succeeded = run
                meta = _planned(context, plan_task_id) if plan_task_id else {}
                self.feedback(
                    task,
                    s,
                    seconds,
                    input_size=meta.get("input_size"),
                    load=meta.get("load"),
                    succeeded=succeeded,
                    site=meta.get("site"),
                )
            except Exception:  # noqa: BLE001 - a callback must never fail the workflow
                log.warning("ARBO: reporting %s failed", task, exc_info=True)

        return callback


def measure_mapped(context: dict[str, Any], mapped_task_id: str) -> tuple[int, float, bool] | None:
    """(s, seconds, all succeeded) of a mapped task from an Airflow context; None if unfinished."""
    instances = [
        ti for ti in context["dag_run"].get_task_instances() if ti.task_id == mapped_task_id
    ]
    finished = [ti for ti in instances if ti.start_date is not None and ti.end_date is not None]
    if not finished:
        return None
    start = min(ti.start_date for ti in finished)
    end = max(ti.end_date for ti in finished)
    succeeded = all(str(ti.state) in ("success", "TaskInstanceState.SUCCESS") for ti in instances)
    return len(instances), (end - start).total_seconds(), succeeded


def _planned(context: dict[str, Any], plan_task_id: str) -> dict[str, Any]:
    ti = context.get("ti")
    if ti is None:
        ti = context["dag_run"].get_task_instance(plan_task_id)
    value = ti.xcom_pull(task_ids=plan_task_id, key=XCOM_KEY) if ti is not None else None
    return value if isinstance(value, dict) else {}


def _error_detail(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"
