"""A small network for the simulator's tests: three pools, two object stores, two tools.

Small enough that a whole run takes a fraction of a second, varied enough to exercise what the
simulator models: preferred tags, a tool that fits only some machines, large inputs homed in
one store, local users' jobs and a burst.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"

SMALL = {
    "name": "small",
    "duration_h": 2,
    "history_h": 6,
    "drain_h": 12,
    "objectstores": {
        "os_a": {"latitude": 48.0, "longitude": 7.8, "weight": 3},
        "os_c": {"latitude": 38.7, "longitude": -9.1, "weight": 1},
    },
    "sites": {
        "a": {
            "destination": "dest_a",
            "latitude": 48.0,
            "longitude": 7.8,
            "machines": 2,
            "cores_per_machine": 16,
            "memory_gb_per_machine": 64,
            "objectstores": ["os_a"],
            "tags": ["pref"],
            "background_load": 0.3,
        },
        "b": {
            "latitude": 52.4,
            "longitude": 4.9,
            "machines": 3,
            "cores_per_machine": 16,
            "memory_gb_per_machine": 128,
            "speed": 0.8,
            "background_load": 0.2,
        },
        "c": {
            "latitude": 38.7,
            "longitude": -9.1,
            "machines": 2,
            "cores_per_machine": 8,
            "memory_gb_per_machine": 32,
            "objectstores": ["os_c"],
            "speed": 1.2,
        },
    },
    "tools": {
        "small": {"share": 3, "cores": 1, "mem_gb": 2, "run_median_s": 120},
        "big": {
            "share": 1,
            "cores": 12,
            "mem_gb": 48,
            "run_median_s": 900,
            "prefer": ["pref"],
            "inputs": {"count": 2, "size_median_mb": 2000},
        },
    },
    "arrivals": {"jobs_per_hour": 60, "bursts": [{"start_h": 0.5, "duration_h": 0.2, "jobs": 40}]},
}


def scenario_file(tmp_path: Path, **changes) -> Path:
    """`SMALL` with top-level keys replaced, written as YAML under `tmp_path`."""
    raw = json.loads(json.dumps(SMALL))
    for key, value in changes.items():
        raw[key] = value
    path = tmp_path / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
