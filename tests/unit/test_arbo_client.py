"""ARBO client against a real broker (uvicorn on a free local port) and with the broker down."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from fastapi import FastAPI

from broker.arbo.client import XCOM_KEY, ArboClient, measure_mapped, split_evenly
from broker.arbo.routes import router
from broker.config import Settings
from broker.demo import free_port
from broker.errors import install_error_handlers


@pytest.fixture
def broker_url(tmp_path):
    app = FastAPI()
    install_error_handlers(app)
    app.state.settings = Settings(state_dir=tmp_path)
    app.include_router(router)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "broker did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize(("n", "s"), [(10, 3), (3, 8), (7, 1), (0, 4), (6, 6)])
def test_split_evenly_keeps_every_item_in_order(n, s):
    chunks = split_evenly(list(range(n)), s)
    assert [x for c in chunks for x in c] == list(range(n))
    assert len(chunks) == (min(s, n) if n else 0)
    if chunks:
        assert max(map(len, chunks)) - min(map(len, chunks)) <= 1


def test_client_round_trip(broker_url):
    url, app = broker_url
    client = ArboClient(url)
    first = client.parallelism("bwa", default_s=4, input_size=10.0)
    assert first.from_broker and first.s == 4 and "cold start" in first.reason
    assert client.feedback("bwa", s=4, seconds=120.0, input_size=10.0)
    second = client.parallelism("bwa", default_s=4, input_size=10.0)
    assert second.from_broker and second.s != 4 and second.predicted_seconds > 0
    assert [r.seconds for r in app.state.arbo.store.recent("bwa", 10)] == [120.0]


def test_broker_down_means_default_s_and_a_warning(caplog):
    client = ArboClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    with caplog.at_level(logging.WARNING, logger="broker.arbo.client"):
        decision = client.parallelism("bwa", default_s=6)
        chunks = client.mapped_arguments("bwa", list("abcdefghij"), default_s=6)
        accepted = client.feedback("bwa", s=6, seconds=10.0)
    assert decision.s == 6 and not decision.from_broker
    assert len(chunks) == 6 and not accepted
    assert (
        sum("unavailable" in r.message or "not recorded" in r.message for r in caplog.records) == 3
    )


def test_broker_rejecting_the_request_also_falls_back(broker_url):
    url, _app = broker_url
    decision = ArboClient(url).parallelism("bwa", default_s=5, max_s=2)  # 422: default > max
    assert decision.s == 5 and not decision.from_broker and "422" in decision.reason


# Airflow is not installed here; these carry exactly the attributes Airflow 2's context, DagRun
# and TaskInstance expose to callbacks (task_id, map_index, start_date, end_date, state,
# xcom_push/xcom_pull, get_task_instances, get_task_instance).
class TaskInstance:
    def __init__(self, task_id, start=None, end=None, state="success", map_index=-1):
        self.task_id, self.start_date, self.end_date = task_id, start, end
        self.state, self.map_index = state, map_index
        self.xcom: dict = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value

    def xcom_pull(self, task_ids, key):
        return self.dag_run.get_task_instance(task_ids).xcom.get(key)


class DagRun:
    def __init__(self, tis):
        self.tis = tis
        for ti in tis:
            ti.dag_run = self

    def get_task_instances(self):
        return list(self.tis)

    def get_task_instance(self, task_id):
        return next(ti for ti in self.tis if ti.task_id == task_id and ti.map_index == -1)


def test_airflow_pattern_plan_then_callback_reports_the_stage(broker_url):
    url, app = broker_url
    client = ArboClient(url)
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    plan = TaskInstance("plan", t0, t0)
    DagRun([plan])
    chunks = client.mapped_arguments(
        "align", [f"f{i}" for i in range(9)], default_s=3, input_size=900.0, ti=plan
    )
    assert len(chunks) == 3 and plan.xcom[XCOM_KEY]["s"] == 3
    mapped = [
        TaskInstance(
            "align",
            t0 + timedelta(seconds=10 + i),
            t0 + timedelta(seconds=100 + 20 * i),
            map_index=i,
        )
        for i in range(len(chunks))
    ]
    done = TaskInstance("done", t0 + timedelta(seconds=150), t0 + timedelta(seconds=151))
    run = DagRun([plan, *mapped, done])
    assert measure_mapped({"dag_run": run}, "align") == (3, 130.0, True)
    client.success_callback("align", "align", "plan")({"dag_run": run, "ti": done})
    stored = app.state.arbo.store.recent("align", 10, succeeded_only=False)
    assert [(r.s, r.seconds, r.input_size, r.succeeded) for r in stored] == [
        (3, 130.0, 900.0, True)
    ]


def test_callback_reports_failure_and_never_raises(broker_url, caplog):
    url, app = broker_url
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    tis = [
        TaskInstance("align", t0, t0 + timedelta(seconds=50), map_index=0),
        TaskInstance("align", t0, t0 + timedelta(seconds=70), state="failed", map_index=1),
    ]
    ArboClient(url).success_callback("align", "align")({"dag_run": DagRun(tis)})
    stored = app.state.arbo.store.recent("align", 10, succeeded_only=False)
    assert [(r.s, r.seconds, r.succeeded) for r in stored] == [(2, 70.0, False)]
    down = ArboClient(f"http://127.0.0.1:{free_port()}", timeout=1)
    with caplog.at_level(logging.WARNING, logger="broker.arbo.client"):
        down.success_callback("align", "align")({"dag_run": DagRun(tis)})
        down.success_callback("align", "align")({})  # malformed context: logged, not raised
    assert len(caplog.records) == 2


def test_feedback_that_cannot_be_sent_is_a_warning_not_an_exception(caplog):
    client = ArboClient(f"http://127.0.0.1:{free_port()}", timeout=1)
    unserialisable = object()  # e.g. a value the workflow computed of a type JSON cannot carry
    assert client.feedback("align", 4, seconds=unserialisable) is False
    assert "not recorded" in caplog.text
