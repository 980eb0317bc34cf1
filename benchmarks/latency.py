"""`python -m benchmarks.latency`: /process_data throughput and latency vs a trivial endpoint.

One uvicorn server (one worker) serves both the broker and a trivial FastAPI endpoint that
returns a constant (the ceiling: what FastAPI + uvicorn + HTTP cost without any ranking).
`wrk` (Debian package) loads each from a second process with the same body. Two servers, one
after the other:

- `broker`: the embedded snapshot source, 20 candidate destinations, 50 input datasets.
- `production`: the configuration users run: the InfluxDB source (a real influxd started here,
  holding the demo network's points as of now; the broker refreshes from it in the background
  as deployed), hence the in-flight ledger on, holding `BENCH_IN_FLIGHT` (default 10,000) jobs
  across the sites at the start (each staging a day of data, so none expires during the run;
  every request adds one more), and 50 candidate destinations. `in_flight` is what the ledger
  holds when the run ends. Every request carries its own Galaxy job id (wrk numbers them) and
  the decision log is on, writing each decision's 50 points to that same influxd.
- `production_redis`: the same with the ledger shared through Redis (`ledger.redis_url`, a
  `redis-server` started here on a free port): every decision is also appended to the Redis
  stream by the ledger's writer thread while its reader follows the stream.
- `production_without_log`: the `production` server with `decision_log.enabled: false`, the
  same requests: `decision_log_cost` = 1 - production rps / this rps (target: at most 0.05),
  and `decision_log` what the log wrote, dropped and still held when the run ended.

Printed side by side; JSON on the last line, each ratio against the ceiling of its own server.
Target, for the first two: p99 under 10 ms and at least 60% of the ceiling's throughput; for
`production_redis`: p99 under 10 ms. Wall-clock figures on a shared machine swing;
`benchmarks.decision_log_instructions` counts the log's cost in instructions instead.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from broker.config import DEFAULT_CONFIG, load_settings
from broker.demo import ServerError, serving
from metric_contract.lineprotocol import format_point, parse_lines
from tests.support.influxdb import InfluxServer
from tests.support.redis_server import RedisServer

DURATION_S = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4"))
IN_FLIGHT = int(os.environ.get("BENCH_IN_FLIGHT", "10000"))
DESTINATIONS, DATASETS = 20, 50
PRODUCTION_DESTINATIONS = 50
STAGING_S = 86400.0  # the prefilled jobs' data takes a day to stage: they stay in flight


def make_app():
    """uvicorn factory: the broker app plus the trivial ceiling endpoint; with the InfluxDB
    source, the ledger prefilled with `BENCH_IN_FLIGHT` jobs and an endpoint that counts it."""
    from broker.app import create_app

    settings = load_settings()
    app = create_app(settings)
    ledger = app.state.routed
    if ledger is not None:
        sites = sorted({settings.site_of(d) for d in settings.destinations})
        now = time.time()
        for i in range(IN_FLIGHT):
            ledger.add(sites[i % len(sites)], now, STAGING_S, cores=8, mem_mb=16_384, gpus=0)

        @app.get("/bench/in_flight")
        async def in_flight() -> dict:
            now = time.time()
            return {"jobs": sum(ledger.in_flight(s, -math.inf, now).jobs for s in sites)}

    @app.post("/trivial")
    async def trivial() -> dict:
        return {"ok": True}

    # Matched right after /process_data (which the app matches first): the ceiling pays no
    # route matching that the broker's route skips.
    app.router.routes.insert(1, app.router.routes.pop())
    return app


def write_config(
    workdir: Path, destinations: int, influx_url: str | None = None, redis_url: str | None = None
) -> tuple[Path, dict]:
    """The demo network grown to `destinations` (extra queues on the same pools); with
    `influx_url`, read from that InfluxDB instead of the snapshot; with `redis_url`, the
    ledger shared through that Redis."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["metrics"]["snapshot"] = str(DEFAULT_CONFIG.parent / config["metrics"]["snapshot"])
    if influx_url:
        config["metrics"]["source"] = "influxdb"
        config["metrics"]["influxdb"] = {"url": influx_url, "database": "galaxy"}
    if redis_url:
        config["ledger"] = {"redis_url": redis_url, "key_prefix": "tpv_broker_bench:"}
    base = list(config["destinations"].items())
    for i in range(destinations - len(base)):
        dest_id, conf = base[i % len(base)]
        config["destinations"][f"{dest_id}_extra{i}"] = dict(conf)
    name = ("influxdb" if influx_url else "snapshot") + ("-redis" if redis_url else "")
    path = workdir / f"broker-{name}.yml"
    path.write_text(yaml.safe_dump(config))
    rng = random.Random(1)
    stores = list(config["objectstores"])
    body = {
        "destinations": [{"id": d} for d in config["destinations"]],
        "datasets": {
            str(i): {"object_store_id": rng.choice(stores), "size": rng.randint(10**6, 10**10)}
            for i in range(DATASETS)
        },
        "job_info": {
            "tool_id": "toolshed.g2.bx.psu.edu/repos/devteam/bwa/bwa_mem/0.7.17.2",
            "mem": 16,
            "cores": 8,
            "gpus": 0,
        },
    }
    return path, body


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run_wrk(url: str, body: dict, workdir: Path, job_ids: bool = False) -> dict:
    """wrk's figures for POSTing `body`; with `job_ids`, each request with a job id of its own."""
    script = workdir / "post.lua"
    lua = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    if job_ids:
        head = json.dumps(body)[:-1]  # without its closing brace
        lua += (
            f"local head = [==[{head}]==]\nlocal n = 0\n"
            "request = function()\n  n = n + 1\n"
            '  return wrk.format(nil, nil, nil, head .. \',"job_id":\' .. n .. "}")\nend\n'
        )
    else:
        lua += f"wrk.body = [==[{json.dumps(body)}]==]\n"
    script.write_text(lua)
    cmd = [
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{DURATION_S}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {
        p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"benchmark: {errors.group(1)} failed requests at {url}")
    return {"rps": round(rps, 1), "p50_ms": round(lat["50"], 3), "p99_ms": round(lat["99"], 3)}


def fill_influxdb(workdir: Path) -> InfluxServer:
    """A real influxd holding the demo snapshot's points, moved in time so the newest is now
    (fresh cluster usage and queues, history within its window), written as Telegraf does."""
    server = InfluxServer(workdir / "influxdb")
    server.start()
    snapshot = load_settings(DEFAULT_CONFIG).metrics.snapshot
    assert snapshot is not None
    points = list(parse_lines(snapshot.read_text().splitlines()))
    shift_ns = time.time_ns() - max(p.time_ns or 0 for p in points)
    server.write(
        [format_point(p.measurement, p.tags, p.fields, (p.time_ns or 0) + shift_ns) for p in points]
    )
    return server


def measure(
    config: Path, body: dict, workdir: Path, production: bool, decision_log: bool = True
) -> dict:
    """Ceiling and broker figures from one server; for production, the ledger and the decision
    log at the end (requests with job ids; without `decision_log`, the log off and no ceiling
    run: it is the pair of the production run)."""
    env = {**os.environ, "TPV_BROKER_CONFIG": str(config)}
    if not decision_log:
        env["TPV_BROKER_DECISION_LOG__ENABLED"] = "false"

    def command(port: int) -> list[str]:
        return ["uvicorn", "--factory", "benchmarks.latency:make_app", "--port", str(port),
                "--log-level", "warning", "--no-access-log"]  # fmt: skip

    with serving(command, env, timeout_s=120) as (base, health):  # a loaded machine starts slowly
        if production and health["metrics"]["sites"] == 0:
            raise SystemExit(f"benchmark: the broker read no sites from InfluxDB: {health}")
        answer = httpx.post(f"{base}/process_data?explain=true", json=body, timeout=5).json()
        ids = sorted(d["id"] for d in body["destinations"])
        assert sorted(answer["sorted_destinations"]) == ids, "broker answer is not a permutation"
        states = [d["state"] for d in answer["explanation"]["destinations"]]
        results = {"fresh": states.count("fresh")}
        runs = [("broker", "/process_data")]
        if decision_log:
            runs.insert(0, ("ceiling", "/trivial"))
        for name, path in runs:
            job_ids = production and path == "/process_data"
            run_wrk(f"{base}{path}", body, workdir, job_ids)  # warm-up, discarded
            results[name] = run_wrk(f"{base}{path}", body, workdir, job_ids)
        if production:
            results["in_flight"] = httpx.get(f"{base}/bench/in_flight", timeout=5).json()["jobs"]
            logged = httpx.get(f"{base}/health", timeout=5).json()["decision_log"]
            results["decision_log"] = {
                k: logged[k] for k in ("enabled", "written", "dropped", "buffered") if k in logged
            }
    return results


def main() -> int:
    if shutil.which("wrk") is None:
        print(
            "benchmark: wrk not found (Debian package wrk; `make bench` installs it)",
            file=sys.stderr,
        )
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="tpv-broker-bench-"))
    influx = fill_influxdb(workdir)
    redis_server = RedisServer(workdir / "redis")
    try:
        redis_server.start()
        snapshot_config, body = write_config(workdir, DESTINATIONS)
        production_config, production_body = write_config(
            workdir, PRODUCTION_DESTINATIONS, influx.url
        )
        redis_config, _ = write_config(
            workdir, PRODUCTION_DESTINATIONS, influx.url, redis_server.url
        )
        snap = measure(snapshot_config, body, workdir, production=False)
        prod = measure(production_config, production_body, workdir, production=True)
        shared = measure(redis_config, production_body, workdir, production=True)
        bare = measure(
            production_config, production_body, workdir, production=True, decision_log=False
        )
    except ServerError as exc:
        print(f"benchmark: the broker did not start:\n{exc}", file=sys.stderr)
        return 1
    finally:
        influx.stop()
        redis_server.stop()
    results = {
        "broker": snap["broker"],
        "ceiling": snap["ceiling"],
        "throughput_ratio": round(snap["broker"]["rps"] / snap["ceiling"]["rps"], 3),
        "production": {**prod["broker"], "in_flight": prod["in_flight"]},
        "production_ceiling": prod["ceiling"],
        "production_ratio": round(prod["broker"]["rps"] / prod["ceiling"]["rps"], 3),
        "production_redis": shared["broker"],
        "production_redis_ceiling": shared["ceiling"],
        "production_without_log": bare["broker"],
        "decision_log_cost": round(1 - prod["broker"]["rps"] / bare["broker"]["rps"], 3),
        "decision_log": prod["decision_log"],
    }
    print(f"{CONNECTIONS} connections, {DURATION_S} s per run, one uvicorn worker, {DATASETS} "
          f"datasets; broker: snapshot, {DESTINATIONS} destinations ({snap['fresh']} fresh); "
          f"production: InfluxDB, {PRODUCTION_DESTINATIONS} destinations ({prod['fresh']} "
          f"fresh), {IN_FLIGHT} jobs in flight at the start")  # fmt: skip
    print(f"{'endpoint':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")  # production: log on
    rows = (("broker", results["broker"]), ("ceiling", results["ceiling"]),
            ("production", results["production"]),
            ("ceiling (production)", results["production_ceiling"]),
            ("production_redis", results["production_redis"]),
            ("ceiling (prod. redis)", results["production_redis_ceiling"]),
            ("production, no log", results["production_without_log"]))  # fmt: skip
    for name, r in rows:
        print(f"{name:<22} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
    print(f"in flight at the end of the production run: {results['production']['in_flight']}, "
          f"of the production_redis run: {shared['in_flight']}")  # fmt: skip
    logged = results["decision_log"]
    print(f"decision log: {logged.get('written')} decisions written, {logged.get('dropped')} "
          f"dropped, {logged.get('buffered')} still buffered at the end; cost "
          f"{results['decision_log_cost']:.3f} of throughput (target <= 0.05): "
          f"{'met' if results['decision_log_cost'] <= 0.05 else 'NOT met'}")  # fmt: skip
    judged = (("broker", "throughput_ratio"), ("production", "production_ratio"))
    for name, ratio in judged:
        figures = results[name]
        ok = figures["p99_ms"] < 10 and results[ratio] >= 0.6
        print(f"{name} target (p99 < 10 ms, >= 60% of ceiling, {results[ratio]:.3f}): "
              f"{'met' if ok else 'NOT met'}")  # fmt: skip
    redis_p99 = results["production_redis"]["p99_ms"]
    print(f"production_redis target (p99 < 10 ms, {redis_p99:.2f} ms): "
          f"{'met' if redis_p99 < 10 else 'NOT met'}")  # fmt: skip
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
