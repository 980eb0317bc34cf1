"""Example DAG: ARBO chooses how many KubernetesPodOperator workers align a batch of samples.

``plan`` asks the broker for ``s`` just before the heavy stage and returns ``s`` argument lists;
``align`` is mapped over them (Airflow dynamic task mapping); ``done`` reports the stage's
duration with ARBO's success callback. If the broker is down, ``plan`` uses ``DEFAULT_S`` and the
callback only logs a warning: the DAG runs as it would without ARBO.

Configure with Airflow Variables ``arbo_url`` (e.g. http://broker.example.org:8080) and
``arbo_token`` (optional bearer token).
"""

from __future__ import annotations

from datetime import datetime

from airflow.decorators import dag, task
from airflow.models import Variable
from airflow.operators.empty import EmptyOperator
from airflow.operators.python import get_current_context
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from broker.arbo.client import ArboClient

TASK = "rnaseq.align"
DEFAULT_S = 8


def arbo() -> ArboClient:
    return ArboClient(Variable.get("arbo_url"), timeout=5, token=Variable.get("arbo_token", None))


def report(context) -> None:
    """Built at call time: no Variable lookups while the scheduler parses the file."""
    arbo().success_callback(TASK, mapped_task_id="align", plan_task_id="plan")(context)


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False, tags=["arbo"])
def rnaseq_align():
    @task
    def list_samples() -> list[dict]:
        # In a real pipeline: read the sample sheet. Each sample carries its size in bytes.
        return [
            {"uri": f"s3://bucket/sample-{i}.fastq.gz", "bytes": 2_000_000_000} for i in range(40)
        ]

    @task
    def plan(samples: list[dict]) -> list[list[str]]:
        uris = [s["uri"] for s in samples]
        chunks = arbo().mapped_arguments(
            TASK,
            uris,
            default_s=DEFAULT_S,
            max_s=32,
            input_size=sum(s["bytes"] for s in samples),
            slo={"max_seconds": 3600, "price_per_worker_second": 0.0001, "confidence": 0.9},
            site="k8s-main",
            ti=get_current_context()["ti"],
        )
        # One argument list per worker: the aligner gets its share of the samples.
        return [["align", "--samples", ",".join(chunk)] for chunk in chunks]

    align = KubernetesPodOperator.partial(
        task_id="align",
        name="align",
        image="ghcr.io/example/aligner:1.0",
        cmds=["python", "-m", "aligner"],
        get_logs=True,
    ).expand(arguments=plan(list_samples()))

    # all_done: "done" also runs when an aligner failed, so ARBO hears about failed runs too.
    done = EmptyOperator(task_id="done", trigger_rule="all_done", on_success_callback=report)
    align >> done


rnaseq_align()
