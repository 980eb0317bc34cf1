"""`python -m benchmarks.latency`: /process_data throughput and latency vs a trivial endpoint.

One uvicorn server (one worker) serves both the broker and a trivial FastAPI endpoint that
returns a constant (the ceiling: what FastAPI + uvicorn + HTTP cost without any ranking).
`wrk` (Debian package) loads each from a second process with the same body: a request with
20 candidate destinations and 50 input datasets. Printed side by side; JSON on the last line.
Target: broker p99 under 10 ms and at least 60% of the ceiling's throughput.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import yaml

from broker.config import DEFAULT_CONFIG, load_settings
from broker.demo import ServerError, serving

DURATION_S = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4"))
DESTINATIONS, DATASETS = 20, 50


def make_app():
    """uvicorn factory: the broker app plus the trivial ceiling endpoint."""
    from broker.app import create_app

    app = create_app(load_settings())

    @app.post("/trivial")
    async def trivial() -> dict:
        return {"ok": True}

    # Matched right after /process_data (which the app matches first): the ceiling pays no
    # route matching that the broker's route skips.
    app.router.routes.insert(1, app.router.routes.pop())
    return app


def write_config(workdir: Path) -> tuple[Path, dict]:
    """The demo network grown to 20 destinations (extra queues on the same pools)."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["metrics"]["snapshot"] = str(DEFAULT_CONFIG.parent / config["metrics"]["snapshot"])
    base = list(config["destinations"].items())
    for i in range(DESTINATIONS - len(base)):
        dest_id, conf = base[i % len(base)]
        config["destinations"][f"{dest_id}_extra{i}"] = dict(conf)
    path = workdir / "broker.yml"
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


def run_wrk(url: str, body: dict, workdir: Path) -> dict:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{json.dumps(body)}]==]\n"
    )
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


def main() -> int:
    if shutil.which("wrk") is None:
        print(
            "benchmark: wrk not found (Debian package wrk; `make bench` installs it)",
            file=sys.stderr,
        )
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="tpv-broker-bench-"))
    config, body = write_config(workdir)
    env = {**os.environ, "TPV_BROKER_CONFIG": str(config)}

    def command(port: int) -> list[str]:
        return ["uvicorn", "--factory", "benchmarks.latency:make_app", "--port", str(port),
                "--log-level", "warning", "--no-access-log"]  # fmt: skip

    try:
        with serving(command, env) as (base, _health):
            answer = httpx.post(f"{base}/process_data", json=body, timeout=5).json()
            ids = sorted(d["id"] for d in body["destinations"])
            assert sorted(answer["sorted_destinations"]) == ids, (
                "broker answer is not a permutation"
            )
            results = {}
            for name, path in (("ceiling", "/trivial"), ("broker", "/process_data")):
                run_wrk(f"{base}{path}", body, workdir)  # warm-up, discarded
                results[name] = run_wrk(f"{base}{path}", body, workdir)
    except ServerError as exc:
        print(f"benchmark: the broker did not start:\n{exc}", file=sys.stderr)
        return 1
    results = {"broker": results["broker"], "ceiling": results["ceiling"]}
    results["throughput_ratio"] = round(results["broker"]["rps"] / results["ceiling"]["rps"], 3)
    print(f"{DESTINATIONS} destinations, {DATASETS} datasets, {CONNECTIONS} connections, "
          f"{DURATION_S} s per run, one uvicorn worker")  # fmt: skip
    print(f"{'endpoint':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("broker", "ceiling"):
        r = results[name]
        print(f"{name:<10} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
    ok = results["broker"]["p99_ms"] < 10 and results["throughput_ratio"] >= 0.6
    print(f"target (p99 < 10 ms, >= 60% of ceiling): {'met' if ok else 'NOT met'}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
