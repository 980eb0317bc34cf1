"""What the TPV tests and benchmarks/tpv_overhead.py start for real: the broker on loopback, a
small network for it to rank (config + line-protocol snapshot that the tests rewrite to change
the metrics), a misbehaving HTTP server for the fault cases, and a TPV worker process running in
the TPV venv. Runs in the main venv; only `TpvWorker` and the `tpv` CLI cross into the TPV venv.
"""

from __future__ import annotations

import importlib.util
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from broker.demo import free_port

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
# Outside the checkout, so every clone on this machine (CI's too) reuses one 1.6 GB build.
TPV_VENV = Path(
    os.environ.get("TPV_VENV")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tpv-broker" / "venv-tpv"
)
TPV_PYTHON = TPV_VENV / "bin" / "python"
TPV_CLI = TPV_VENV / "bin" / "tpv"
BROKER_CLI = Path(sys.executable).parent / "tpv-broker"
TOKEN = "tpv-test-token"
BWA = "toolshed.g2.bx.psu.edu/repos/devteam/bwa/bwa_mem/0.7.17.2"
GPU_TOOL = "toolshed.g2.bx.psu.edu/repos/iuc/gpu_tool/gpu_tool/1.0"
GIB = 1024**3
# TPV's own order for a pulsar job in fixtures/tpv-base.yml (tag score, then config order).
TPV_ORDER = ["pulsar_be_ghent", "pulsar_de_freiburg", "pulsar_it_bari"]

SITES = {
    "pulsar_de_freiburg": ("freiburg", 47.99, 7.85, "os_freiburg"),
    "pulsar_it_bari": ("bari", 41.12, 16.87, "os_bari"),
    "pulsar_be_ghent": ("ghent", 51.05, 3.72, "os_ghent"),
}


def ensure_tpv_venv() -> None:
    """Build the TPV venv unless it is there and matches the constraints (`make tpv-venv`)."""
    subprocess.run(["bash", str(HERE / "make-venv.sh")], check=True, cwd=ROOT)


def render_fragment(path: Path, **overrides: Any) -> Path:
    """Write the role's template rendered with its defaults plus `overrides` (examples/tpv)."""
    spec = importlib.util.spec_from_file_location("tpv_render", ROOT / "examples/tpv/render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_text(module.render(overrides))
    return path


# -- the network the broker ranks ------------------------------------------------------------

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


def snapshot_lines(busy: tuple[str, ...] = ()) -> str:
    """Every site fresh with free slots, except the destinations in `busy`: full, 3000 queued."""
    lines = ["# tests/tpv network snapshot"]
    for dest, (site, *_rest) in SITES.items():
        lines.append(_usage(site, dest not in busy, _NOW_NS))
        queued = 3000 if dest in busy else 0
        lines.append(
            f"queue_by_destination,destination_id={dest},state=queued count={queued}i {_NOW_NS}"
        )
    return "\n".join(lines) + "\n"


def write_network(directory: Path, busy: tuple[str, ...] = ()) -> Path:
    """Broker config + snapshot; the snapshot is re-read every 0.2 s, so rewriting it is live."""
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
    path.write_text(yaml.safe_dump(config, sort_keys=False))
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

    def __init__(self, directory: Path):
        self.directory = directory
        self.config = write_network(directory)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.directory / "broker.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [str(BROKER_CLI), "serve", "--config", str(self.config), "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited: {(self.directory / 'broker.log').read_text()}")
            try:
                http_json(self.url + "/health", timeout=1)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise RuntimeError("broker did not answer /health within 30 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def set_busy(self, *busy: str) -> None:
        """Rewrite the snapshot and wait until the broker has read the new one (two refreshes)."""
        before = http_json(self.url + "/health")["metrics"]["refreshes"]
        write_network(self.directory, busy)
        deadline = time.monotonic() + 10
        while http_json(self.url + "/health")["metrics"]["refreshes"] < before + 2:
            if time.monotonic() > deadline:
                raise RuntimeError("broker did not refresh its metrics within 10 s")
            time.sleep(0.05)

    def rank(self, request: dict[str, Any]) -> list[str]:
        return http_json(self.url + "/process_data", request)["sorted_destinations"]


class FaultServer:
    """A broker stand-in that misbehaves on purpose; the first path segment picks how.

    /hang/...: reads the request, never answers (until stopped); /500/...: HTTP 500;
    /garbage/...: 200 with a body that is not JSON; /shape/...: 200, JSON of the wrong shape;
    /unknown/...: 200, ids that are not candidates; /partial/...: 200, only the last preferred id;
    /reverse/...: 200, TPV's preference reversed. Every request is recorded (path, headers, body).
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                mode = self.path.strip("/").split("/")[0]
                server.requests.append(
                    {"mode": mode, "headers": dict(self.headers), "body": json.loads(body)}
                )
                preference = json.loads(body).get("preference", [])
                if mode == "hang":
                    server.stopping.wait(30)  # bounded: the test run never waits on it
                    return
                status, answer = 200, b""
                if mode == "500":
                    status, answer = 500, b'{"detail": "internal error"}'
                elif mode == "garbage":
                    answer = b"<html>\x00\xffnot json"
                elif mode == "shape":
                    answer = json.dumps({"sorted_destinations": "pulsar_it_bari"}).encode()
                elif mode == "unknown":
                    answer = json.dumps({"sorted_destinations": ["elsewhere", *preference]})
                    answer = answer.encode()
                elif mode == "partial":
                    answer = json.dumps({"sorted_destinations": preference[-1:]}).encode()
                elif mode == "reverse":
                    answer = json.dumps({"sorted_destinations": preference[::-1]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


# TPV 3.3's wheel has no py.typed marker, so by default mypy skips TPV's own modules and `tpv lint`
# warns about that (T103 import-untyped) for any config with code in it, while the snippet sees
# TPV's objects as Any. Following those imports checks the snippet against TPV's real types.
LINT_MYPY_INI = "[mypy]\nfollow_untyped_imports = True\n"


def tpv_cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start TPV's own command line (`tpv lint`, `tpv dry-run`) in the TPV venv."""
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "mypy.ini").write_text(LINT_MYPY_INI)  # mypy reads it from the working directory
    # The mypy cache warmed when the venv was built turns minutes into seconds.
    env = dict(os.environ, MYPY_CACHE_DIR=str(TPV_VENV / ".mypy_cache"))
    return subprocess.Popen(
        [str(TPV_CLI), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class TpvWorker:
    """tests/tpv/route_job.py --serve in the TPV venv: Galaxy is imported once for all tests."""

    def __init__(self, log_path: Path):
        self.log = open(log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [str(TPV_PYTHON), str(HERE / "route_job.py"), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=log_path.parent,
        )
        self.selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self.selector.register(self.process.stdout, selectors.EVENT_READ)

    def route(self, timeout: float = 180, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        request.setdefault("job_conf", str(FIXTURES / "job_conf.yml"))
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        if not self.selector.select(timeout):
            raise TimeoutError(f"TPV worker gave no answer within {timeout} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"TPV worker exited with {self.process.wait()}")
        return json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
