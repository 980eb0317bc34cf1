# TPV Broker rank code: roles/tpv_broker_rank/templates/tpv_broker_rank.py, which the role's
# template includes after the `_tb_settings` it writes. TPV runs it in one namespace holding its
# rank context (candidate_destinations, entity, tool, job, helpers and the evaluated cores, mem,
# gpus) and takes the value of the last expression as the order; `noqa: F821` marks where those
# names, bound by TPV and not here, are read (`tpv lint` checks them against TPV's types).
import contextlib
import http.client
import json
import logging
import math
import os
import time
import urllib.parse
from typing import Any

_tb_config: dict[str, Any] = _tb_settings  # noqa: F821 - written by the template, above
_tb_url: str = _tb_config["url"]
_tb_timeout_s: float = _tb_config["timeout_s"]
_tb_max_answer_bytes: int = _tb_config["max_answer_bytes"]
_tb_context_keys: list[str] = json.loads(_tb_config["context_keys_json"])
_tb_objectstores: dict[str, Any] = json.loads(_tb_config["objectstores_json"])
_tb_token: str = _tb_config["token"]
if _tb_config["token_env"]:
    # The job handlers' environment wins, so the token need not be written into the file.
    _tb_token = os.environ.get(_tb_config["token_env"]) or _tb_token
_tb_log = logging.getLogger(_tb_config["logger"])


def _tb_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    # One deadline for the whole exchange (connect, send, headers, body), not per socket
    # read, so a broker that trickles its answer cannot hold a Galaxy job handler.
    deadline = time.monotonic() + timeout
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    path = (parts.path or "/") + (("?" + parts.query) if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, parts.port, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        sock = conn.sock  # kept: http.client lets go of conn.sock once the answer starts
        if sock is not None:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
        response = conn.getresponse()
        chunks: list[bytes] = []
        received = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete answer within {timeout:g} s")
            if sock is not None:
                sock.settimeout(remaining)
            chunk = response.read1(65536)
            if not chunk:
                return response.status, b"".join(chunks)
            chunks.append(chunk)
            received += len(chunk)
            if received > _tb_max_answer_bytes:
                raise ValueError(f"answer larger than {_tb_max_answer_bytes} bytes")
    finally:
        conn.close()


def _tb_number(name: str) -> float | None:
    # TPV puts the evaluated cores/mem/gpus into the rank context; `gpus` only when some
    # entity sets it (TPV 3.x), so a missing one means "not asked for".
    value = globals().get(name)
    if value is None:
        value = getattr(entity, name, None)  # noqa: F821 - TPV's rank context
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _tb_count(name: str) -> int | None:
    value = _tb_number(name)
    return None if value is None else int(math.ceil(value))


def _tb_one_line(text: object) -> str:
    return " ".join(str(text).split())[:300]


_tb_candidates = list(candidate_destinations)  # noqa: F821 - TPV's rank context
try:
    # TPV's own order: its default ranker (tag score, best first; a stable sort keeps the
    # config order among equals). This is the answer whenever the broker cannot help.
    _tb_tpv_order = sorted(_tb_candidates, key=lambda d: d.score(entity), reverse=True)  # noqa: F821
except Exception:
    _tb_tpv_order = list(_tb_candidates)
_tb_result = _tb_tpv_order
_tb_tool_id = None
if len(_tb_candidates) > 1:
    try:
        _tb_tool_id = getattr(tool, "id", None)  # noqa: F821 - TPV's rank context
        _tb_destinations: list[dict[str, Any]] = []
        for _tb_d in _tb_candidates:
            _tb_ctx = _tb_d.context or {}
            _tb_destinations.append(
                {
                    "id": _tb_d.id,
                    "context": {k: _tb_ctx[k] for k in _tb_context_keys if k in _tb_ctx},
                }
            )
        _tb_request: dict[str, Any] = {
            "destinations": _tb_destinations,
            "datasets": helpers.get_dataset_attributes(job.input_datasets),  # noqa: F821
            "job_info": {
                "tool_id": _tb_tool_id,
                "mem": _tb_number("mem"),
                "cores": _tb_count("cores"),
                "gpus": _tb_count("gpus"),
            },
            "preference": [d.id for d in _tb_tpv_order],
        }
        if _tb_objectstores:
            _tb_request["objectstores"] = _tb_objectstores
        _tb_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if _tb_token:
            _tb_headers["Authorization"] = "Bearer " + _tb_token
        _tb_status, _tb_body = _tb_post(
            _tb_url, json.dumps(_tb_request, default=str).encode(), _tb_headers, _tb_timeout_s
        )
        if _tb_status != 200:
            raise ValueError(f"HTTP {_tb_status}: {_tb_body[:200].decode('utf-8', 'replace')}")
        try:
            _tb_answer = json.loads(_tb_body)
        except ValueError as _tb_bad:
            raise ValueError(f"malformed answer: not JSON ({_tb_bad})") from None
        _tb_ids = _tb_answer.get("sorted_destinations") if isinstance(_tb_answer, dict) else None
        if not isinstance(_tb_ids, list) or not all(isinstance(i, str) for i in _tb_ids):
            raise ValueError("malformed answer: sorted_destinations is not a list of ids")
        _tb_by_id = {d.id: d for d in _tb_candidates}
        _tb_unknown = [i for i in _tb_ids if i not in _tb_by_id]
        if _tb_unknown:
            raise ValueError(
                f"answer names destinations that are not candidates: {_tb_unknown[:5]}"
            )
        _tb_ranked = list(dict.fromkeys(_tb_ids))
        _tb_missing = [d for d in _tb_tpv_order if d.id not in _tb_ranked]
        # Candidates the broker left out keep TPV's order, after the ones it ranked.
        _tb_result = [_tb_by_id[i] for i in _tb_ranked] + _tb_missing
        if _tb_missing:
            _tb_log.warning(
                "tpv-broker rank: tool %s: broker left out %s; kept at the end in TPV's order",
                _tb_tool_id,
                [d.id for d in _tb_missing],
            )
        else:
            _tb_log.debug("tpv-broker rank: tool %s: %s", _tb_tool_id, _tb_ranked)
    except Exception as _tb_exc:
        _tb_result = _tb_tpv_order
        # Not even a broken logging setup may stop the job from being routed.
        with contextlib.suppress(Exception):
            _tb_log.warning(
                "tpv-broker rank: tool %s: using TPV's own order %s: %s: %s",
                _tb_tool_id,
                [d.id for d in _tb_tpv_order],
                type(_tb_exc).__name__,
                _tb_one_line(_tb_exc),
            )
_tb_result  # noqa: B018 - TPV takes the value of the last expression as the order
