"""A broker stand-in that misbehaves on purpose, for the rank snippet's fallback cases."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
