"""Randomized ranking cases for the differential test (tests/unit/test_ranking_differential.py).

Each case is a settings mapping, line-protocol metrics and a short sequence of request bodies
ranked one after the other, with or without the in-flight ledger, so that the ledger's effect
on later decisions is covered too. Everything is drawn from `random.Random(seed)`: the same
seed gives the same cases on every machine. The cases reach every branch of the model: stale,
cannot-fit and fresh pools, GPUs, queued rows, shared sites, unknown destinations and stores,
coordinates in the request, measured bandwidths, TPV preference lists.
"""

from __future__ import annotations

import random
from typing import Any

from metric_contract.lineprotocol import format_point

NOW = 1_800_000_000
NS = 1_000_000_000
TOOLS = ["toolshed/iuc/bwa_mem/1.0", "toolshed/iuc/spades/4.0", "cat1", None]
SITES = [f"site{i}" for i in range(6)]
DESTS = [f"d{i}" for i in range(8)]
STORES = ["s_a", "s_b", "s_c"]


def _coord(rng: random.Random) -> tuple[float, float]:
    return (round(rng.uniform(35, 65), 3), round(rng.uniform(-10, 30), 3))


def _settings(rng: random.Random) -> dict[str, Any]:
    destinations: dict[str, Any] = {}
    for dest in rng.sample(DESTS, k=rng.randint(0, len(DESTS))):
        conf: dict[str, Any] = {}
        if rng.random() < 0.6:
            conf["site"] = rng.choice(SITES)
        if rng.random() < 0.8:
            conf["latitude"], conf["longitude"] = _coord(rng)
        if rng.random() < 0.4:
            conf["objectstores"] = rng.sample(STORES, k=rng.randint(1, 2))
        if rng.random() < 0.3:
            conf["features"] = {"os": rng.choice(["el8", "el9"])}
        destinations[dest] = conf
    stores = {}
    for store in rng.sample(STORES, k=rng.randint(0, len(STORES))):
        lat, lon = _coord(rng)
        stores[store] = {"latitude": lat, "longitude": lon}
    bandwidth: dict[str, Any] = {"peak_mb_s": rng.choice([500.0, 1000.0])}
    if rng.random() < 0.3:
        bandwidth["matrix"] = {rng.choice(STORES): {rng.choice(DESTS): rng.choice([5.0, 80.0])}}
    return {
        "metrics": {
            "source": "snapshot",
            "snapshot": "unused.lp",
            "staleness_s": rng.choice([120, 300, 900]),
        },
        "ranking": {
            "preference_step_s": rng.choice([0.0, 60.0, 300.0]),
            "dispatch_s": rng.choice([0.0, 30.0]),
            "min_runs": rng.choice([1, 5]),
            "bandwidth": bandwidth,
        },
        "destinations": destinations,
        "objectstores": stores,
    }


def _usage(rng: random.Random, site: str) -> str:
    cpus = rng.choice([8, 64, 512])
    free = rng.randint(0, cpus)
    mem = cpus * rng.choice([2000, 8000])
    mem_free = rng.randint(0, mem)
    gpus = rng.choice([0, 0, 4])
    fields: dict[str, Any] = {
        "cpus": cpus,
        "cpus_free": free,
        "memory_mb": mem,
        "memory_mb_free": mem_free,
        "gpus": gpus,
        "gpus_free": rng.randint(0, gpus),
        "jobs_idle": rng.choice([0, 0, rng.randint(1, 200)]),
        "jobs_running": rng.randint(0, 100),
        "jobs_held": rng.randint(0, 3),
    }
    if rng.random() < 0.8:
        fields["largest_free_cpus"] = rng.randint(0, free)
        fields["largest_free_memory_mb"] = rng.randint(0, mem_free)
    if gpus and rng.random() < 0.5:
        fields["largest_free_gpus"] = rng.randint(0, gpus)
    t = NOW - rng.choice([0, 30, 200, 1000, 5000])
    return format_point("htcondor_cluster_usage", {"site": site}, fields, t * NS)


def _metrics(rng: random.Random) -> list[str]:
    lines = [_usage(rng, site) for site in SITES + DESTS if rng.random() < 0.6]
    queue_run = NOW - rng.choice([0, 10])
    for dest in DESTS:
        if rng.random() < 0.4:
            t = queue_run - rng.choice([0, 0, 60])
            tags = {"destination_id": dest, "state": "queued"}
            lines.append(
                format_point("queue_by_destination", tags, {"count": rng.randint(0, 80)}, t * NS)
            )
        for tool in TOOLS[:3]:
            tags = {"destination_id": dest, "tool_id": tool}
            if rng.random() < 0.4:
                fields = {
                    "count": rng.randint(1, 100),
                    "median_run": rng.uniform(10, 20_000),
                    "median_queue": rng.uniform(0, 3000),
                    "perc_95_run": rng.uniform(20_000, 40_000),
                }
                t = NOW - rng.choice([3600, 86400, 5 * 86400])
                lines.append(format_point("destination-queue-run-time", tags, fields, t * NS))
            if rng.random() < 0.4:
                fields = {"ok": rng.randint(0, 200), "error": rng.randint(0, 40)}
                lines.append(format_point("job_outcomes", tags, fields, (NOW - 600) * NS))
    return lines


def _request(rng: random.Random) -> dict[str, Any]:
    ids = rng.sample(DESTS + ["x_unknown", "y_unknown"], k=rng.randint(1, 9))
    destinations = []
    for i in ids:
        d: dict[str, Any] = {"id": i}
        roll = rng.random()
        if roll < 0.3:
            d["latitude"], d["longitude"] = _coord(rng)
        elif roll < 0.5:
            lat, lon = _coord(rng)
            d["context"] = {"latitude": str(lat), "longitude": lon}
        destinations.append(d)
    datasets = {}
    for n in range(rng.choice([0, 1, 3])):
        store = rng.choice([*STORES, "s_unknown", None])
        size = rng.choice([None, 0, 1e6, 5e9, 2e11])
        datasets[str(n)] = {"object_store_id": store, "size": size}
    objectstores = {}
    if rng.random() < 0.3:
        lat, lon = _coord(rng)
        objectstores[rng.choice(["s_unknown", *STORES])] = {"latitude": lat, "longitude": lon}
    job: dict[str, Any] = {
        "tool_id": rng.choice(TOOLS),
        "cores": rng.choice([1, 1, 4, 16, 128, 600]),
        "mem": rng.choice([None, 0.5, 4, 60, 900]),
    }
    if rng.random() < 0.2:
        job["gpus"] = rng.choice([1, 2])
    body: dict[str, Any] = {
        "destinations": destinations,
        "objectstores": objectstores,
        "datasets": datasets,
        "job_info": job,
    }
    if rng.random() < 0.3:
        body["preference"] = rng.sample(ids, k=rng.randint(1, len(ids))) + ["zz_not_a_candidate"]
    return body


def cases(seed: int, count: int) -> list[dict[str, Any]]:
    """`count` cases: {"settings", "lines", "ledger", "requests": [{"body", "explain"}]}."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        requests = [
            {"body": _request(rng), "explain": rng.random() < 0.8} for _ in range(rng.randint(1, 6))
        ]
        out.append(
            {
                "settings": _settings(rng),
                "lines": _metrics(rng),
                "ledger": rng.random() < 0.5,
                "requests": requests,
            }
        )
    return out
