"""Start a real InfluxDB 1.x (Debian package `influxdb`) for a test session.

Its own config, data directory and free loopback ports, so it never touches a system instance.
`write()` posts line protocol to /write exactly as Telegraf's influx output does.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx

from broker.demo import free_port
from tests.support import processes


class InfluxServer:
    def __init__(self, workdir: Path, database: str = "galaxy"):
        self.workdir = Path(workdir)
        self.database = database
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def _write_config(self) -> Path:
        d = self.workdir
        config = d / "influxdb.conf"
        config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d / "meta"}"
[data]
  dir = "{d / "data"}"
  wal-dir = "{d / "wal"}"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
"""
        )
        return config

    def start(self, timeout_s: float = 30) -> None:
        influxd = shutil.which("influxd")
        if influxd is None:
            raise RuntimeError("influxd not found: install the Debian package influxdb (make deps)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        log = open(self.workdir / "influxd.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [influxd, "run", "-config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"influxd exited early, see {self.workdir / 'influxd.log'}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"influxd did not answer /ping within {timeout_s} s")
        self.query(f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        processes.stop(self.process)
        self.process = None

    def query(self, q: str, epoch: str | None = None) -> dict:
        params = {"q": q, "db": self.database, **({"epoch": epoch} if epoch else {})}
        r = httpx.post(f"{self.url}/query", params=params, timeout=10)
        r.raise_for_status()
        return r.json()

    def write(self, lines: str | list[str], precision: str = "ns") -> None:
        body = lines if isinstance(lines, str) else "\n".join(lines)
        r = httpx.post(
            f"{self.url}/write",
            params={"db": self.database, "precision": precision},
            content=body.encode(),
            timeout=10,
        )
        if r.status_code != 204:
            raise RuntimeError(f"InfluxDB /write answered {r.status_code}: {r.text}")

    def reset(self) -> None:
        """Drop and recreate the database: each test starts from nothing."""
        self.query(f'DROP DATABASE "{self.database}"')
        self.query(f'CREATE DATABASE "{self.database}"')
