"""Route jobs with the real TPV and Galaxy libraries; runs in the TPV venv, not the main one.

Galaxy's own call path is used: `tpv.rules.gateway.map_tool_to_destination` with TPV's
`mock_galaxy` App/Job/Tool/User and input datasets that live in object stores. The mapper is
loaded with `gateway.load_destination_mapper` and registered the way `tpv dry-run` does it, so no
config-file watcher threads are started; everything after that is what a Galaxy job handler runs.

Importing Galaxy costs seconds, so the tests keep one of these running (`--serve`: one JSON
request per stdin line, one JSON answer per stdout line); `benchmarks/tpv_overhead.py` uses
`--repeat` to time many jobs on one loaded mapper. Each answer:
`{"destination", "ranking" (TPV's ranked candidates, from its explain trace), "log" (records of
the snippet's logger), "elapsed_ms" (per job), "error"}`. A request may also give the job's
Galaxy id (`job_id`), the user's `roles`, and a `seed` for Python's `random` (which TPV's
`helpers.weighted_random_sampling` draws from), set just before the job is routed; or `jobs`, a
list of such `{"job_id", "seed"}`, routed one after the other on the same mapper, whose
destinations are in the answer's `destinations` (one per job, in order).

One shot: route_job.py --job-conf JOB_CONF --config BASE.yml --config FRAGMENT.yml
          --tool TOOL_ID [--user EMAIL] [--dataset BYTES:OBJECT_STORE_ID ...] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
import time
import warnings
from typing import Any

warnings.simplefilter("ignore")  # Galaxy's dependencies warn about Python versions on import

from tpv.commands.test import mock_galaxy  # noqa: E402
from tpv.core.explain import ExplainCollector, ExplainPhase  # noqa: E402
from tpv.rules import gateway  # noqa: E402

RANK_STEP = re.compile(r"^#(\d+) (\S+) \(score: ")
_apps: dict[str, Any] = {}


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append({"level": record.levelname, "message": record.getMessage()})


def _app(job_conf: str) -> Any:
    if job_conf not in _apps:
        _apps[job_conf] = mock_galaxy.App(job_conf=job_conf)
    return _apps[job_conf]


def _job(datasets: list[tuple[int, str | None]], job_id: int | None) -> Any:
    job = mock_galaxy.Job(id=job_id)
    for n, (size, store) in enumerate(datasets):
        dataset = mock_galaxy.Dataset(f"input{n}.dat", file_size=size, object_store_id=store)
        job.add_input_dataset(mock_galaxy.DatasetAssociation(f"input{n}", dataset))
    return job


def route(request: dict[str, Any]) -> dict[str, Any]:
    """Route the request's jobs (`jobs`, or `repeat` identical ones) on one freshly loaded
    mapper; `destination` and `ranking` are the last one's."""
    capture = Capture()
    logger = logging.getLogger(request.get("logger", "tpv.broker_rank"))
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    answer: dict[str, Any] = {
        "destination": None,
        "destinations": [],
        "ranking": [],
        "log": [],
        "elapsed_ms": [],
    }
    try:
        configs = list(request["configs"])
        gateway.ACTIVE_DESTINATION_MAPPERS = {
            "tpv_dispatcher": gateway.load_destination_mapper(configs)
        }
        app = _app(request["job_conf"])
        tool = mock_galaxy.Tool(request["tool"])
        user = mock_galaxy.User(
            "ford", request.get("user") or "prefect@vortex.org", roles=request.get("roles")
        )
        datasets = [(int(size), store) for size, store in request.get("datasets", [])]
        explain = bool(request.get("explain", True))
        one = {"job_id": request.get("job_id"), "seed": request.get("seed")}
        jobs = request.get("jobs") or [one] * max(1, int(request.get("repeat", 1)))
        for spec in jobs:
            job = _job(datasets, None if spec.get("job_id") is None else int(spec["job_id"]))
            collector = ExplainCollector() if explain else None
            if spec.get("seed") is not None:
                random.seed(spec["seed"])
            started = time.perf_counter()
            destination = gateway.map_tool_to_destination(
                app, job, tool, user, tpv_config_files=configs, explain_collector=collector
            )
            answer["elapsed_ms"].append((time.perf_counter() - started) * 1000)
            answer["destination"] = destination.id
            answer["destinations"].append(destination.id)
            if collector is not None:
                answer["ranking"] = [
                    m.group(2)
                    for s in collector.steps
                    if s.phase == ExplainPhase.DESTINATION_RANKING
                    and (m := RANK_STEP.match(s.message))
                ]
        answer["error"] = None
    except Exception as exc:  # report, so one failing case does not end the worker
        answer["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        logger.removeHandler(capture)
    answer["log"] = capture.records
    answer["request_id"] = request.get("request_id")  # echoed: the caller matches it
    return answer


def serve(out: Any) -> int:
    for line in sys.stdin:
        if line.strip():
            out.write(json.dumps(route(json.loads(line))) + "\n")
            out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="JSON lines on stdin -> stdout")
    parser.add_argument("--job-conf")
    parser.add_argument("--config", action="append", default=[], help="TPV config, in order")
    parser.add_argument("--tool", default="_default_")
    parser.add_argument("--user")
    parser.add_argument("--dataset", action="append", default=[], help="BYTES:OBJECT_STORE_ID")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-explain", action="store_true", help="time jobs without the trace")
    args = parser.parse_args(argv)
    # Galaxy and TPV log to stdout/stderr on import and load: keep stdout for the answers only.
    out = sys.stdout
    sys.stdout = sys.stderr
    if args.serve:
        return serve(out)
    request = {
        "job_conf": args.job_conf,
        "configs": args.config,
        "tool": args.tool,
        "user": args.user,
        "datasets": [
            (d.split(":", 1)[0], d.split(":", 1)[1] if ":" in d else None) for d in args.dataset
        ],
        "repeat": args.repeat,
        "explain": not args.no_explain,
    }
    answer = route(request)
    out.write(json.dumps(answer) + "\n")
    return 0 if answer["error"] is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
