# TPV Broker rank code: roles/tpv_broker_rank/templates/tpv_broker_rank.py, which the role's
# template includes after the `_tb_settings` and `_tb_fallback_rank` it writes. TPV runs it in one
# namespace holding its rank context (candidate_destinations, entity, tool, job, helpers and the
# evaluated cores, mem, gpus) and takes the value of the last expression as the order;
# `noqa: F821` marks where those names, bound by TPV and not here, are read (`tpv lint` checks
# them against TPV's types).
#
# Modes (tpv_broker_rank_routing_mode): `enforce` routes by the broker's answer, `shadow` asks
# the broker (so it records the decision) but routes by the fallback, `off` never calls it. The
# fallback is the administrator's own rank expression (tpv_broker_rank_fallback, evaluated here,
# in TPV's context), or TPV's default order when none is set; it is computed before the call and
# sent along, so the broker knows which destination the job went to when it was not its choice.
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
_tb_mode: str = _tb_config["mode"]


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


def _tb_ids(destinations: list[Any]) -> list[str]:
    return [d.id for d in destinations]


def _tb_warn(message: str, *args: Any) -> None:
    # Not even a broken logging setup may stop the job from being routed.
    with contextlib.suppress(Exception):
        _tb_log.warning(message, *args)


def _tb_fallback_order(
    candidates: list[Any], tpv_order: list[Any], tool_id: Any
) -> tuple[list[Any], str]:
    """The administrator's own rank expression's order, as that expression gave it (TPV then
    tries it in that order, as it would without the broker), and its name for the log; TPV's
    order when there is none, or when it raises or gives no list of destinations."""
    if _tb_fallback_rank is None:  # noqa: F821 - written by the template
        return tpv_order, "TPV's own order"
    try:
        order = list(_tb_fallback_rank())  # noqa: F821 - written by the template
        if candidates and not order:
            raise ValueError("it gave no destination")
        for d in order:
            if not isinstance(getattr(d, "id", None), str):
                raise ValueError(f"it gave a {type(d).__name__}, not a destination")
        return order, "the fallback order"
    except Exception as exc:
        _tb_warn(
            "tpv-broker rank: tool %s: the fallback rank expression failed, TPV's own order %s "
            "used instead: %s: %s",
            tool_id,
            _tb_ids(tpv_order),
            type(exc).__name__,
            _tb_one_line(exc),
        )
        return tpv_order, "TPV's own order"


def _tb_ask_broker(
    candidates: list[Any], tpv_order: list[Any], scores: dict[str, Any], fallback: list[Any]
) -> list[str]:
    """The broker's order of the candidates' ids (its first choice first); raises on any
    problem, for the caller to log once."""
    destinations: list[dict[str, Any]] = []
    for d in candidates:
        ctx = d.context or {}
        context = {k: ctx[k] for k in _tb_context_keys if k in ctx}
        destinations.append({"id": d.id, "context": context})
    job_id = getattr(job, "id", None)  # noqa: F821 - TPV's rank context
    known = {d.id for d in candidates}
    request: dict[str, Any] = {
        "destinations": destinations,
        "datasets": helpers.get_dataset_attributes(job.input_datasets),  # noqa: F821
        "job_info": {
            "tool_id": _tb_tool_id,
            "mem": _tb_number("mem"),
            "cores": _tb_count("cores"),
            "gpus": _tb_count("gpus"),
        },
        "preference": _tb_ids(tpv_order),
        # TPV's tag scores: the broker prices score levels, not places among equal scores
        "tpv_scores": scores or None,
        # Galaxy's job id: the same for every attempt of a resubmitted job (TPV ranks each anew).
        "job_id": None if job_id is None else int(job_id),
        "mode": _tb_mode,
        # Where the job goes when the broker's choice is not used (first = used in shadow mode).
        "fallback_order": [i for i in dict.fromkeys(_tb_ids(fallback)) if i in known],
    }
    if _tb_objectstores:
        request["objectstores"] = _tb_objectstores
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if _tb_token:
        headers["Authorization"] = "Bearer " + _tb_token
    status, body = _tb_post(
        _tb_url, json.dumps(request, default=str).encode(), headers, _tb_timeout_s
    )
    if status != 200:
        raise ValueError(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
    try:
        answer = json.loads(body)
    except ValueError as bad:
        raise ValueError(f"malformed answer: not JSON ({bad})") from None
    ids = answer.get("sorted_destinations") if isinstance(answer, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("malformed answer: sorted_destinations is not a list of ids")
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ValueError(f"answer names destinations that are not candidates: {unknown[:5]}")
    return list(dict.fromkeys(ids))


_tb_candidates = list(candidate_destinations)  # noqa: F821 - TPV's rank context
_tb_tool_id = getattr(tool, "id", None)  # noqa: F821 - TPV's rank context
try:
    # TPV's own order: its default ranker (tag score, best first; a stable sort keeps the
    # config order among equals). The fallback when no rank expression is set, and the
    # `preference` the broker prices, by score.
    _tb_scores = {d.id: d.score(entity) for d in _tb_candidates}  # noqa: F821
    _tb_tpv_order = sorted(_tb_candidates, key=lambda d: _tb_scores[d.id], reverse=True)
except Exception:
    _tb_scores = {}
    _tb_tpv_order = list(_tb_candidates)
# Computed before the call, in every mode: it is the answer whenever the broker's is not used.
_tb_fallback, _tb_fallback_name = _tb_fallback_order(_tb_candidates, _tb_tpv_order, _tb_tool_id)
_tb_result = _tb_fallback
if _tb_mode not in ("enforce", "shadow", "off"):
    _tb_warn("tpv-broker rank: unknown mode %r: the broker is not asked", _tb_mode)
elif _tb_mode != "off" and len(_tb_candidates) > 1:
    try:
        _tb_ranked = _tb_ask_broker(_tb_candidates, _tb_tpv_order, _tb_scores, _tb_fallback)
        if _tb_mode == "shadow":
            _tb_log.debug(
                "tpv-broker rank: tool %s: shadow: routed by the fallback to %s, broker: %s",
                _tb_tool_id,
                _tb_fallback[0].id if _tb_fallback else None,
                _tb_ranked,
            )
        else:
            _tb_by_id = {d.id: d for d in _tb_candidates}
            # Candidates the broker left out follow in the fallback's order, then TPV's.
            _tb_missing = [
                _tb_by_id[i]
                for i in dict.fromkeys(_tb_ids(_tb_fallback) + _tb_ids(_tb_tpv_order))
                if i in _tb_by_id and i not in _tb_ranked
            ]
            _tb_result = [_tb_by_id[i] for i in _tb_ranked] + _tb_missing
            if _tb_missing:
                _tb_warn(
                    "tpv-broker rank: tool %s: broker left out %s; kept at the end in %s",
                    _tb_tool_id,
                    _tb_ids(_tb_missing),
                    _tb_fallback_name,
                )
            else:
                _tb_log.debug("tpv-broker rank: tool %s: %s", _tb_tool_id, _tb_ranked)
    except Exception as _tb_exc:
        _tb_warn(
            "tpv-broker rank: tool %s: %s %s %s: %s: %s",
            _tb_tool_id,
            "shadow, broker not heard, routed by" if _tb_mode == "shadow" else "using",
            _tb_fallback_name,
            _tb_ids(_tb_fallback),
            type(_tb_exc).__name__,
            _tb_one_line(_tb_exc),
        )
_tb_result  # noqa: B018 - TPV takes the value of the last expression as the order
