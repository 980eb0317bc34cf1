"""The real TPV 3.3 with the Galaxy libraries, in a venv of its own (tests/tpv/make-venv.sh):
building it, TPV's command line, and a worker process that routes jobs through Galaxy's call
path. The tests run in the main venv; only `TpvWorker` and `tpv_cli` cross into the TPV venv.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.paths import ROOT, TPV_FIXTURES

# Outside the checkout, so every clone on this machine (CI's too) reuses one 1.6 GB build.
TPV_VENV = Path(
    os.environ.get("TPV_VENV")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tpv-broker" / "venv-tpv"
)
TPV_PYTHON = TPV_VENV / "bin" / "python"
TPV_CLI = TPV_VENV / "bin" / "tpv"
ROUTE_JOB = ROOT / "tests" / "tpv" / "route_job.py"
BWA = "toolshed.g2.bx.psu.edu/repos/devteam/bwa/bwa_mem/0.7.17.2"
GPU_TOOL = "toolshed.g2.bx.psu.edu/repos/iuc/gpu_tool/gpu_tool/1.0"
GIB = 1024**3
# TPV's own order for a pulsar job in fixtures/tpv-base.yml (tag score, then config order).
TPV_ORDER = ["pulsar_be_ghent", "pulsar_de_freiburg", "pulsar_it_bari"]
# Their tag scores (TPV's `destination.score(entity)`), as the rank snippet sends them.
TPV_SCORES = {"pulsar_be_ghent": 6, "pulsar_de_freiburg": 4, "pulsar_it_bari": 4}


def ensure_tpv_venv() -> None:
    """Build the TPV venv unless it is there and matches the constraints (`make tpv-venv`)."""
    subprocess.run(["bash", str(ROOT / "tests" / "tpv" / "make-venv.sh")], check=True, cwd=ROOT)


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
            [str(TPV_PYTHON), str(ROUTE_JOB), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=log_path.parent,
        )
        self.sent = 0
        self.pending = b""
        self.selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self.selector.register(self.process.stdout, selectors.EVENT_READ)

    def route(self, timeout: float = 600, **request: Any) -> dict[str, Any]:
        """One request's answer. Each request is numbered and the worker echoes the number, so
        an answer that comes after its caller gave up (a loaded machine: the first one imports
        Galaxy) is skipped instead of being taken for the next request's."""
        assert self.process.stdin is not None and self.process.stdout is not None
        request.setdefault("job_conf", str(TPV_FIXTURES / "job_conf.yml"))
        self.sent += 1
        request["request_id"] = self.sent
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            answer = json.loads(self._line(deadline, timeout))
            if answer.get("request_id") == self.sent:
                return answer

    def _line(self, deadline: float, timeout: float) -> bytes:
        """The worker's next answer line (read with os.read into our own buffer, so a line that
        arrived with the one before it is not hidden from select in a file object's buffer)."""
        assert self.process.stdout is not None
        while b"\n" not in self.pending:
            if not self.selector.select(max(deadline - time.monotonic(), 0)):
                raise TimeoutError(f"TPV worker gave no answer within {timeout} s")
            chunk = os.read(self.process.stdout.fileno(), 1 << 16)
            if not chunk:
                raise RuntimeError(f"TPV worker exited with {self.process.wait()}")
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line

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
