"""`python -m benchmarks.decision_log_instructions`: what the decision log costs /process_data,
in instructions (valgrind callgrind), which a loaded machine does not blur as it does wall time.

N requests of the production shape (50 candidates, 50 datasets, the in-flight ledger on, each
with its own job id) go in-process through the whole ASGI app, three times, each in a process
of its own under callgrind (side by side), counting only the requests (`--toggle-collect` on the
`functools.reduce` call that runs them):

- `off`: the decision log off (decisions only counted);
- `buffer`: the log on, decisions buffered (the request path's share);
- `full`: the log on, and after the requests every buffered decision formatted into the line
  protocol the writer posts (all the CPU the log takes from this process but the socket write).

Prints instructions per request and the costs relative to `off`; JSON on the last line.
`BENCH_REQUESTS` (default 300) requests per run; needs the Debian package valgrind.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("off", "buffer", "full")
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "300"))
WARM_UP = 100


def build_app(workdir: Path, log_on: bool):
    """The production benchmark's broker (benchmarks.latency) on its snapshot, read as if live:
    ledger and decision log on as with InfluxDB, without a server to write to."""
    from benchmarks.latency import PRODUCTION_DESTINATIONS, write_config
    from broker.app import create_app
    from broker.config import load_settings
    from broker.metrics.cache import MetricsCache
    from broker.metrics.snapshot import SnapshotSource
    from broker.ranking.derived import derive

    config, body = write_config(workdir, PRODUCTION_DESTINATIONS)
    settings = load_settings(config, environ={"TPV_BROKER_STATE_DIR": str(workdir)})
    snapshot = settings.metrics.snapshot
    assert snapshot is not None
    settings.metrics.source = "influxdb"
    settings.decision_log.enabled = log_on
    cache = MetricsCache(SnapshotSource(snapshot), lambda v: derive(v, settings), 3600)
    cache.refresh()
    return create_app(settings, cache), body


def run(mode: str, n: int) -> None:
    """One measured process: warm up, then `n` requests (and, for `full`, the formatting)
    inside one `functools.reduce` call, the only code callgrind counts."""
    from broker.decisions.lines import DecisionLines

    app, body = build_app(Path(tempfile.mkdtemp(prefix="tpv-broker-ir-")), mode != "off")
    head = json.dumps(body)[:-1]
    bodies = [f'{head},"job_id":{i}}}'.encode() for i in range(WARM_UP + n)]
    scope = {"type": "http", "method": "POST", "path": "/process_data", "root_path": "",
             "query_string": b"", "headers": [(b"content-type", b"application/json")],
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80)}  # fmt: skip
    lines = DecisionLines()
    statuses = []

    async def request(raw: bytes) -> None:
        async def receive():
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(dict(scope), receive, send)

    async def requests(raws) -> None:
        for raw in raws:
            await request(raw)

    def written() -> int:
        batch = app.state.decisions.take(10**9)
        if mode == "full":
            body = "\n".join(lines.format(d) for d in batch).encode()
            return len(body)
        return 0

    loop = asyncio.new_event_loop()
    loop.run_until_complete(requests(bodies[:WARM_UP]))
    written()  # the warm-up's decisions, formatted too (templates kept, as in a running log)

    def measured(_acc, _item):
        loop.run_until_complete(requests(bodies[WARM_UP:]))
        return written()

    size = functools.reduce(measured, range(1), 0)
    assert statuses == [200] * len(statuses), set(statuses)
    print(json.dumps({"mode": mode, "requests": n, "bytes": size}))


def collected(n: int, workdir: Path) -> dict[str, int]:
    """Each mode's count, the three processes run side by side (instructions do not depend on
    what else runs; the wall time of valgrind does)."""
    running = {}
    for mode in MODES:
        out = workdir / f"callgrind.{mode}.out"
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
               "--toggle-collect=functools_reduce", f"--callgrind-out-file={out}",
               sys.executable, "-m", "benchmarks.decision_log_instructions",
               "--run", mode, str(n)]  # fmt: skip
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts in every run
        running[mode] = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
    counts = {}
    for mode, process in running.items():
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"benchmark: {mode} run failed:\n{stderr[-2000:]}")
        found = re.search(r"Collected : (\d+)", stderr)
        if found is None:
            raise SystemExit(f"benchmark: callgrind reported no count:\n{stderr[-2000:]}")
        counts[mode] = int(found.group(1))
    return counts


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--run":
        run(sys.argv[2], int(sys.argv[3]))
        return 0
    if shutil.which("valgrind") is None:
        print("benchmark: valgrind not found (Debian package valgrind)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="tpv-broker-callgrind-"))
    per_request = {m: count / REQUESTS for m, count in collected(REQUESTS, workdir).items()}
    off = per_request["off"]
    results = {
        "requests": REQUESTS,
        "instructions_per_request": {m: round(v) for m, v in per_request.items()},
        "hot_path_cost": round(per_request["buffer"] / off - 1, 4),
        "decision_log_cost": round(per_request["full"] / off - 1, 4),
    }
    print(f"{REQUESTS} requests in process, 50 candidates, instructions per request (callgrind)")
    for m in MODES:
        print(f"  {m:<7} {per_request[m]:>12,.0f}")
    print(f"decision log on the request path: {results['hot_path_cost']:+.2%}; with formatting "
          f"its lines: {results['decision_log_cost']:+.2%} (target <= 5%)")  # fmt: skip
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
