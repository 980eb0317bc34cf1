"""Stand-ins for InfluxDB 2.x and 3.x Core serving their InfluxQL v1-compatible `GET /query`
(neither can be installed here). Each checks a request as that version's documentation says:

- 2.x ("/query 1.x compatibility API"): `db` and `q` required, `epoch` one of ns, u, µ, ms,
  s, m, h; authenticated by `Authorization: Token <API token>` (the word Token is
  case-sensitive), or by the credentials of a v1 authorization as basic auth or `u`/`p`
  query parameters. Anything else: 401.
- 3.x Core ("Use the InfluxDB v1 HTTP query API"): a token as `Authorization: Token`, as
  `Authorization: Bearer`, or as the password of basic auth or of `p` (the user name is
  ignored). Anything else: 401. A query may read at most `file_limit` Parquet files (432 by
  default, `--query-file-limit`); the stand-in counts the files a statement would read from
  its time range and how many files a day a measurement fills (written every minute: one
  file per 10-minute chunk; written once a day: one), and refuses a query over the limit.
  The refusal's wording is the stand-in's own.

Both answer from the line-protocol points they hold: per statement, the newest point of every
series within the statement's `time > now() - Ns` range, grouped by the statement's tags, as
InfluxDB 1.x shapes its JSON (`epoch=ns`). Every request is recorded (path, headers, query
parameters) for the test to check.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from metric_contract.lineprotocol import Point, parse_lines

EPOCHS = {"ns", "u", "µ", "ms", "s", "m", "h"}
LIVE_FILES_PER_DAY = 144  # gen1 files of 10 minutes, for a measurement written every minute
_STATEMENT = re.compile(r'FROM\s+"(?P<m>[^"]+)".*?now\(\)\s*-\s*(?P<s>\d+)s', re.S)
_GROUP = re.compile(r"GROUP BY\s+(?P<tags>.+?)(?:\s+ORDER BY|\s+LIMIT|$)", re.S)


class InfluxCompatServer:
    def __init__(
        self,
        version: Literal["2", "3"],
        token: str,
        database: str = "galaxy",
        v1_credentials: tuple[str, str] | None = None,
        files_per_day: dict[str, float] | None = None,
        file_limit: int = 432,
    ):
        self.version = version
        self.token = token
        self.database = database
        self.v1_credentials = v1_credentials  # 2.x: a v1 authorization (user, password)
        self.files_per_day = files_per_day or {}
        self.file_limit = file_limit
        self.points: list[Point] = []
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                server.requests.append(
                    {"path": parts.path, "headers": dict(self.headers), "params": params}
                )
                status, body = server.answer(parts.path, dict(self.headers), params)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> InfluxCompatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def write(self, lines: list[str]) -> None:
        self.points.extend(parse_lines(lines))

    # -- what the documentation says ---------------------------------------------------------

    def authorized(self, headers: dict[str, str], params: dict[str, str]) -> bool:
        header = headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme == "Token" or (self.version == "3" and scheme == "Bearer"):
            return credential == self.token
        if scheme == "Basic":
            user, _, password = base64.b64decode(credential).decode().partition(":")
        elif "p" in params:
            user, password = params.get("u", ""), params["p"]
        else:
            return False
        if self.version == "3":
            return password == self.token  # the user name is ignored
        return self.v1_credentials is not None and (user, password) == self.v1_credentials

    def answer(
        self, path: str, headers: dict[str, str], params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if path != "/query":
            return 404, {"code": "not found", "message": "path not found"}
        if not self.authorized(headers, params):
            return 401, {"code": "unauthorized", "message": "unauthorized access"}
        if "q" not in params:
            return 400, {"error": 'missing required parameter "q"'}
        if params.get("db") != self.database:
            return 404, {"error": f"database not found: {params.get('db')!r}"}
        if "epoch" in params and params["epoch"] not in EPOCHS:
            return 400, {"error": f"invalid epoch {params['epoch']!r}"}
        statements = [s for s in params["q"].split(";") if s.strip()]
        parsed = []
        for statement in statements:
            match = _STATEMENT.search(statement)
            if match is None:
                return 400, {"error": f"stand-in cannot read the statement {statement!r}"}
            parsed.append((match["m"], int(match["s"]), _group_tags(statement)))
        if self.version == "3":
            files = sum(
                math.ceil(self.files_per_day.get(m, LIVE_FILES_PER_DAY) * s / 86400)
                for m, s, _ in parsed
            )
            if files > self.file_limit:
                return 400, {
                    "error": f"query would read {files} Parquet files, more than the file "
                    f"limit of {self.file_limit}: narrow its time range"
                }
        now_ns = time.time_ns()
        results = [
            {"statement_id": i, **self._series(m, now_ns - s * 10**9, tags)}
            for i, (m, s, tags) in enumerate(parsed)
        ]
        return 200, {"results": results}

    def _series(self, measurement: str, since_ns: int, tags: list[str]) -> dict[str, Any]:
        newest: dict[tuple[str, ...], Point] = {}
        for p in self.points:
            if p.measurement != measurement or (p.time_ns or 0) <= since_ns:
                continue
            key = tuple(p.tags.get(t, "") for t in tags)
            if key not in newest or (p.time_ns or 0) > (newest[key].time_ns or 0):
                newest[key] = p
        if not newest:
            return {}
        series = []
        for key, p in sorted(newest.items()):
            other_tags = {k: v for k, v in p.tags.items() if k not in tags}
            columns = ["time", *sorted({**other_tags, **p.fields})]
            row = [p.time_ns, *({**other_tags, **p.fields}[c] for c in columns[1:])]
            series.append(
                {
                    "name": measurement,
                    "tags": dict(zip(tags, key, strict=True)),
                    "columns": columns,
                    "values": [row],
                }
            )
        return {"series": series}


def _group_tags(statement: str) -> list[str]:
    match = _GROUP.search(statement)
    if match is None:
        return []
    return [t.strip().strip('"') for t in match["tags"].split(",") if t.strip()]
