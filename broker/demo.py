"""`make demo`: start the broker on the embedded snapshot, rank the example requests over HTTP,
print one table per request, stop the broker. Uses the real server, as TPV would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "requests"
COLUMNS = (
    "rank",
    "destination",
    "state",
    "transfer",
    "wait",
    "run",
    "P(success)",
    "CO2/attempt",
    "expected",
)


def free_port() -> int:
    """A free loopback port (for the server `serving` starts, and the tests' servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 600:
        return f"{value:.0f} s"
    if value < 36000:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def table(name: str, request: dict, answer: dict) -> str:
    job = request.get("job_info", {})
    tool = (
        (job.get("tool_id") or "?").split("/")[-2]
        if "/" in (job.get("tool_id") or "")
        else job.get("tool_id")
    )
    data_gb = sum((d.get("size") or 0) for d in request.get("datasets", {}).values()) / 1e9
    lines = [
        f"{name}: tool {tool}, {job.get('cores', 1)} cores, {job.get('mem', 0)} GB, "
        f"{data_gb:.1f} GB of input",
    ]
    rows = [COLUMNS]
    for d in answer["explanation"]["destinations"]:
        rows.append(
            (
                str(d["rank"]),
                d["id"],
                d["state"],
                _seconds(d["transfer_s"]),
                _seconds(d["wait_s"]),
                _seconds(d["run_s"]),
                f"{d['p_success']:.3f}",
                f"{d['carbon_kg'] * 1000:.0f} g",
                _seconds(d["expected_s"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for i, row in enumerate(rows):
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    top = answer["explanation"]["destinations"][0]
    lines.append(f"  -> {top['id']}: {top['reason']}")
    lines.append(f"     CO2: {top['terms']['carbon']}")
    return "\n".join(lines)


class ServerError(RuntimeError):
    """The server died or did not answer /health in time; the message holds its stderr."""


@contextmanager
def serving(
    command: Callable[[int], list[str]], env: dict[str, str], timeout_s: float = 30
) -> Iterator[tuple[str, dict]]:
    """Run `command(port)` (a Python module's argv) on a free loopback port until the block
    ends; yields its base URL and its first /health answer."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", *command(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=1).json()
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.terminate()
                    raise ServerError(server.communicate(timeout=10)[1]) from None
                time.sleep(0.2)
        yield base, health
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPV_BROKER_")}
    try:
        with serving(lambda port: ["broker.cli", "serve", "--port", str(port)], env) as (
            base,
            health,
        ):
            metrics = health["metrics"]
            print(f"broker up on {base} ({metrics['source']}, {metrics['sites']} sites)\n")
            for path in sorted(EXAMPLES.glob("*.json")):
                request = json.loads(path.read_text())
                r = httpx.post(
                    f"{base}/process_data", params={"explain": "true"}, json=request, timeout=10
                )
                r.raise_for_status()
                print(table(path.stem, request, r.json()) + "\n")
        return 0
    except ServerError as exc:
        print(f"demo: the broker did not start:\n{exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
