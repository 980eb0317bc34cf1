"""What the broker rank snippet adds to TPV's routing of one job, measured inside the real TPV.

In one run, on one TPV worker (the TPV venv) and one live broker on loopback, the same
job (bwa-mem, 16 cores, 30 GB, a 20 GiB input in Bari's object store) is routed by
`map_tool_to_destination` with the existing TPV config alone (TPV's default rank) and with the
rendered broker fragment added, in alternating rounds so both see the same machine load. Each
time is one job's `map_tool_to_destination` call, so it includes the snippet's HTTP round trip
and the broker's ranking. Routing is checked too: a broker run that fell back would time the
wrong thing.

    python -m benchmarks.tpv_overhead [--jobs 50] [--rounds 10]

The last line is JSON: {"default_rank": {"median_ms", "p99_ms"}, "broker_rank": {...},
"added_median_ms"}. Target: under 5 ms added at the median.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from pathlib import Path

from tests.support.live_broker import TOKEN, Broker
from tests.support.paths import TPV_FIXTURES
from tests.support.rank_fragment import render_fragment
from tests.support.real_tpv import BWA, GIB, TpvWorker, ensure_tpv_venv

BASE = TPV_FIXTURES / "tpv-base.yml"
DATASETS = [[20 * GIB, "os_bari"]]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 3), "p99_ms": round(p99(values), 3)}


def run(jobs: int, rounds: int) -> dict:
    ensure_tpv_venv()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.start()
        worker = TpvWorker(work / "tpv-worker.log")
        try:
            fragment = render_fragment(
                work / "tpv_broker_rank.yml",
                tpv_broker_rank_url=f"{broker.url}/process_data",
                tpv_broker_rank_token=TOKEN,
            )
            configs = {"default_rank": [str(BASE)], "broker_rank": [str(BASE), str(fragment)]}
            expected = {"default_rank": "pulsar_be_ghent", "broker_rank": "pulsar_it_bari"}
            times: dict[str, list[float]] = {name: [] for name in configs}
            for round_no in range(rounds + 1):  # round 0 warms caches and connections: not kept
                for name, files in configs.items():
                    answer = worker.route(
                        configs=files,
                        tool=BWA,
                        datasets=DATASETS,
                        repeat=jobs,
                        explain=False,
                    )
                    if answer["error"] or answer["destination"] != expected[name]:
                        raise RuntimeError(f"{name}: unexpected routing: {answer}")
                    if any(r["level"] == "WARNING" for r in answer["log"]):
                        raise RuntimeError(f"{name}: the snippet fell back: {answer['log']}")
                    if round_no:
                        times[name] += answer["elapsed_ms"]
        finally:
            worker.stop()
            broker.stop()
    result: dict = {name: summary(values) for name, values in times.items()}
    added = statistics.median(times["broker_rank"]) - statistics.median(times["default_rank"])
    result["added_median_ms"] = round(added, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50, help="jobs per config per round")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    result = run(args.jobs, args.rounds)
    n = args.jobs * args.rounds
    for name in ("default_rank", "broker_rank"):
        median, p99_ms = result[name]["median_ms"], result[name]["p99_ms"]
        print(f"{name:13s} {n} jobs: median {median:.2f} ms, p99 {p99_ms:.2f} ms")
    print(f"added by the broker snippet at the median: {result['added_median_ms']:.2f} ms")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
