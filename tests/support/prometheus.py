"""Start a real Prometheus (Debian package `prometheus`) for a test: its own config, data
directory and a free loopback port, scraping the targets it is given every second."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from broker.demo import free_port
from tests.support import processes


class PrometheusServer:
    def __init__(self, workdir: Path, jobs: dict[str, dict[str, Any]]):
        """`jobs`: job name -> {"target": "host:port", "token": bearer token or None}."""
        self.workdir = Path(workdir)
        self.jobs = jobs
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        scrape = []
        for name, job in self.jobs.items():
            conf: dict[str, Any] = {
                "job_name": name,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [job["target"]]}],
            }
            if job.get("token"):
                conf["authorization"] = {"type": "Bearer", "credentials": job["token"]}
            scrape.append(conf)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": scrape,
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self, timeout_s: float = 30) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found: install the Debian package prometheus")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        log = open(self.workdir / "prometheus.log", "ab")  # noqa: SIM115 - lives with the server
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited early, see {self.workdir / 'prometheus.log'}"
                )
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus was not ready within {timeout_s} s")

    def stop(self) -> None:
        processes.stop(self.process)
        self.process = None

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector of `promql` (Prometheus' HTTP API), as its `result` list."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single value of `promql`, None while it has none."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None
