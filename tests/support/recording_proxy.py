"""A recording proxy in front of a live broker: what the rank snippet sent, as the broker got it.

The broker on main ignores request fields it does not know (`job_id`, `mode`, `fallback_order`
before its decision log reads them), so the TPV tests check that every call reaches the broker
with its job id here, between the snippet and the real broker: each POST is forwarded unchanged
(body and Authorization header) and the broker's answer is passed back unchanged.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RecordingProxy:
    """POST <proxy>/<path> -> POST <target>/<path>; `requests` holds, in arrival order, every
    body sent, the status the broker answered with and its answer (parsed JSON, or the text)."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                forward = urllib.request.Request(proxy.target + self.path, data=body, method="POST")
                for name in ("Content-Type", "Authorization"):
                    if self.headers.get(name):
                        forward.add_header(name, self.headers[name])
                try:
                    with urllib.request.urlopen(forward, timeout=10) as resp:
                        status, answer = resp.status, resp.read()
                except urllib.error.HTTPError as err:
                    status, answer = err.code, err.read()
                try:
                    parsed: Any = json.loads(answer)
                except ValueError:
                    parsed = answer.decode("utf-8", "replace")
                with proxy.lock:
                    proxy.requests.append(
                        {"body": json.loads(body), "status": status, "answer": parsed}
                    )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def take(self) -> list[dict[str, Any]]:
        """The requests recorded since the last call (and forget them)."""
        with self.lock:
            taken, self.requests = self.requests, []
        return taken
