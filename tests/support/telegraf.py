"""What Telegraf does with a collector, without Telegraf (not installable here): run it the way
its exec plugin does, and write its output to InfluxDB the way its influx output does."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from metric_contract.lineprotocol import format_point, parse_lines
from tests.support.paths import ROOT


def run_module(module: str, *args: str, timeout: float = 30, env: dict | None = None):
    """Run `python -m module args` as Telegraf's exec plugin would; returns CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TPV_COLLECTOR_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def telegraf_write(influxdb, output: str, host: str = "galaxy-test", now_ns: int | None = None):
    """What Telegraf does with an exec plugin's stdout: parse the influx data format, add its
    global `host` tag, stamp points that carry no timestamp with the collection time, and POST
    the batch to /write. Returns the number of points written."""
    stamp = now_ns if now_ns is not None else time.time_ns()
    lines = []
    for p in parse_lines(output.splitlines()):
        tags = dict(p.tags) | {"host": host}
        lines.append(format_point(p.measurement, tags, p.fields, p.time_ns or stamp))
    if lines:
        influxdb.write(lines)
    return len(lines)
