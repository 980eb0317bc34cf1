"""A live broker for the TPV tests and benchmarks/tpv_overhead.py: `tpv-broker serve` on
loopback, ranking a small network (config + line-protocol snapshot) that a test rewrites to
change the metrics while the broker runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from broker.config import deep_merge
from broker.demo import free_port
from tests.support import processes
from tests.support.paths import ROOT

# `tpv-broker` of this checkout (not whichever copy an installed script would import)
BROKER_CLI = [sys.executable, "-m", "broker.cli"]
TOKEN = "tpv-test-token"

SITES = {
    "pulsar_de_freiburg": ("freiburg", 47.99, 7.85, "os_freiburg"),
    "pulsar_it_bari": ("bari", 41.12, 16.87, "os_bari"),
    "pulsar_be_ghent": ("ghent", 51.05, 3.72, "os_ghent"),
}

_NOW_NS = 1_800_000_000 * 10**9


def _usage(site: str, free: bool, ts: int) -> str:
    if free:
        f = "cpus_free=256i,memory_mb_free=2097152i,gpus_free=2i,jobs_idle=0i,jobs_running=40i"
        f += ",largest_free_cpus=32i,largest_free_memory_mb=262144i"
    else:
        f = "cpus_free=0i,memory_mb_free=0i,gpus_free=0i,jobs_idle=3000i,jobs_running=512i"
        f += ",largest_free_cpus=0i,largest_free_memory_mb=0i"
    return (
        f"htcondor_cluster_usage,site={site} cpus=512i,memory_mb=4194304i,gpus=4i,"
        f"jobs_held=0i,{f} {ts}"
    )


def snapshot_lines(busy: tuple[str, ...] = (), time_ns: int = _NOW_NS) -> str:
    """Every site fresh with free slots, except the destinations in `busy`: full, 3000 queued.
    `time_ns`: the points' time (for an InfluxDB, now)."""
    lines = ["# tests/tpv network snapshot"]
    for dest, (site, *_rest) in SITES.items():
        lines.append(_usage(site, dest not in busy, time_ns))
        queued = 3000 if dest in busy else 0
        lines.append(
            f"queue_by_destination,destination_id={dest},state=queued count={queued}i {time_ns}"
        )
    return "\n".join(lines) + "\n"


def write_network(
    directory: Path, busy: tuple[str, ...] = (), overrides: dict[str, Any] | None = None
) -> Path:
    """Broker config + snapshot; the snapshot is re-read every 0.2 s, so rewriting it is live.
    `overrides` are merged into the config (e.g. an InfluxDB source and a shared ledger)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "network.lp.tmp").write_text(snapshot_lines(busy))
    os.replace(directory / "network.lp.tmp", directory / "network.lp")
    config = {
        "server": {"log_level": "warning"},
        "state_dir": str(directory / "state"),
        "metrics": {
            "source": "snapshot",
            "snapshot": "network.lp",
            "staleness_s": 300,
            "influxdb": {"refresh_s": 0.2},
        },
        "destinations": {
            dest: {"site": site, "latitude": lat, "longitude": lon, "objectstores": [store]}
            for dest, (site, lat, lon, store) in SITES.items()
        },
        "objectstores": {
            store: {"latitude": lat, "longitude": lon} for _s, lat, lon, store in SITES.values()
        },
        "auth": {"tokens": [TOKEN]},
    }
    path = directory / "broker.yml"
    path.write_text(yaml.safe_dump(deep_merge(config, overrides or {}), sort_keys=False))
    return path


def http_json(url: str, body: Any = None, token: str | None = TOKEN, timeout: float = 5) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


class Broker:
    """`tpv-broker serve` on a free loopback port, on the network written by write_network."""

    def __init__(self, directory: Path, overrides: dict[str, Any] | None = None):
        self.directory = directory
        self.overrides = overrides
        self.config = write_network(directory, overrides=overrides)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120) -> None:
        """Start it and wait for /health. The bound is generous: importing the broker takes
        seconds on an idle machine and over 30 s on a loaded 2-core CI runner."""
        log = open(self.directory / "broker.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [*BROKER_CLI, "serve", "--config", str(self.config), "--port", str(self.port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited: {(self.directory / 'broker.log').read_text()}")
            try:
                http_json(self.url + "/health", timeout=1)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()  # not left running behind a failed test
        raise RuntimeError(f"broker did not answer /health within {timeout_s:g} s")

    def stop(self) -> None:
        processes.stop(self.process)
        self.process = None

    def set_busy(self, *busy: str) -> None:
        """Rewrite the snapshot and wait until the broker has read the new one (two refreshes)."""
        before = http_json(self.url + "/health")["metrics"]["refreshes"]
        write_network(self.directory, busy, self.overrides)
        deadline = time.monotonic() + 10
        while http_json(self.url + "/health")["metrics"]["refreshes"] < before + 2:
            if time.monotonic() > deadline:
                raise RuntimeError("broker did not refresh its metrics within 10 s")
            time.sleep(0.05)

    def rank(self, request: dict[str, Any]) -> list[str]:
        return http_json(self.url + "/process_data", request)["sorted_destinations"]
