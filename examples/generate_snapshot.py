"""Regenerate the embedded demo network: `python examples/generate_snapshot.py`.

Writes broker/data/demo-network.yml (destinations, sites, coordinates, object stores) and
broker/data/demo-network.lp (a line-protocol snapshot of the four contract measurements).
The numbers are invented but shaped like the European Pulsar network: a dozen HTCondor pools of
different sizes and speeds, object stores in five countries, a day of run-time aggregates, a
week of outcomes, one site full with a queue, one that went silent two hours ago, one that never
reported, and one that fails SPAdes often. Each destination has features (os, cpu_arch,
container runtime, cvmfs, gpu) for the success model; Kraken2 fails often where the CVMFS
reference data is missing, so the model learns it from the feature and predicts it for a
destination without Kraken2 history. Deterministic (seeded), so the file diff is reviewable.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml

import metric_contract.measurements as mc
from metric_contract.lineprotocol import format_point
from metric_contract.units import MB_PER_GB

OUT = Path(__file__).resolve().parent.parent / "broker" / "data"
T0 = 1_795_003_200  # 2026-11-18T12:00:00Z: the snapshot's "now"

# destination id: (site, lat, lon, cores, memory GB, gpus, speed, used fraction, idle, local store)
SITES = {
    "pulsar_de_freiburg": ("freiburg", 47.99, 7.85, 2048, 16384, 8, 1.00, 0.97, 140, "os_freiburg"),
    "pulsar_be_ghent": ("ghent", 51.05, 3.72, 512, 4096, 0, 0.90, 0.40, 0, "os_ghent"),
    "pulsar_it_bari": ("bari", 41.12, 16.87, 768, 6144, 4, 1.15, 0.55, 0, "os_bari"),
    "pulsar_pt_lisbon": ("lisbon", 38.72, -9.14, 384, 3072, 0, 1.25, 0.20, 0, "os_lisbon"),
    "pulsar_cz_brno": ("brno", 49.19, 16.61, 1024, 8192, 4, 0.95, 0.88, 12, "os_brno"),
    "pulsar_es_barcelona": ("barcelona", 41.39, 2.17, 640, 5120, 0, 1.05, 0.65, 3, None),
    "pulsar_fr_orsay": ("orsay", 48.70, 2.18, 896, 7168, 2, 1.00, 0.75, 0, None),
    "pulsar_no_oslo": ("oslo", 59.91, 10.75, 256, 2048, 0, 1.10, 0.30, 0, None),
    "pulsar_uk_london": ("london", 51.52, -0.04, 512, 4096, 0, 0.95, 0.99, 45, None),
    "pulsar_gr_heraklion": ("heraklion", 35.34, 25.13, 192, 1536, 0, 1.30, 0.10, 0, None),
    "pulsar_fi_espoo": ("espoo", 60.20, 24.66, 1536, 12288, 8, 0.85, 0.50, 0, None),
    "pulsar_nl_amsterdam": ("amsterdam", 52.35, 4.95, 1024, 8192, 4, 0.90, 0.60, 0, None),
}
SILENT = {"heraklion": 2 * 3600}  # last report two hours before T0
# site: its grid's carbon intensity, g CO2eq/kWh (roughly the country's yearly mean); written
# 20 min before T0 (a silent site's with its last report, so it is past carbon_staleness_s)
CARBON = {
    "freiburg": 380,
    "ghent": 170,
    "bari": 330,
    "lisbon": 160,
    "brno": 450,
    "barcelona": 150,
    "orsay": 55,
    "oslo": 30,
    "london": 230,
    "heraklion": 400,
    "amsterdam": 320,
}
NEVER_REPORTED = {"espoo"}
STORES = {
    "os_freiburg": (47.99, 7.85),
    "os_ghent": (51.05, 3.72),
    "os_bari": (41.12, 16.87),
    "os_lisbon": (38.72, -9.14),
    "os_brno": (49.19, 16.61),
}
# tool id: (median run s at speed 1, failure rate)
TOOLS = {
    "toolshed.g2.bx.psu.edu/repos/devteam/fastqc/fastqc/0.74+galaxy0": (95, 0.01),
    "toolshed.g2.bx.psu.edu/repos/devteam/bwa/bwa_mem/0.7.17.2": (1800, 0.02),
    "toolshed.g2.bx.psu.edu/repos/iuc/hisat2/hisat2/2.2.1+galaxy1": (1500, 0.03),
    "toolshed.g2.bx.psu.edu/repos/nml/spades/spades/3.15.5+galaxy2": (7200, 0.06),
    "toolshed.g2.bx.psu.edu/repos/iuc/kraken2/kraken2/2.1.3+galaxy1": (900, 0.04),
    "toolshed.g2.bx.psu.edu/repos/iuc/featurecounts/featurecounts/2.0.3+galaxy2": (240, 0.01),
}
FLAKY = {("pulsar_it_bari", "toolshed.g2.bx.psu.edu/repos/nml/spades/spades/3.15.5+galaxy2"): 0.45}
# destination id: (os, cpu_arch, container runtime, cvmfs mounted)
FEATURES = {
    "pulsar_de_freiburg": ("rocky9", "x86_64", "apptainer", "yes"),
    "pulsar_be_ghent": ("rocky9", "x86_64", "apptainer", "yes"),
    "pulsar_it_bari": ("centos7", "x86_64", "singularity", "yes"),
    "pulsar_pt_lisbon": ("debian12", "x86_64", "docker", "no"),
    "pulsar_cz_brno": ("rocky9", "x86_64", "apptainer", "yes"),
    "pulsar_es_barcelona": ("rocky8", "x86_64", "apptainer", "no"),
    "pulsar_fr_orsay": ("rocky8", "x86_64", "apptainer", "yes"),
    "pulsar_no_oslo": ("debian12", "aarch64", "apptainer", "no"),
    "pulsar_uk_london": ("rocky9", "x86_64", "apptainer", "yes"),
    "pulsar_gr_heraklion": ("centos7", "x86_64", "singularity", "no"),
    "pulsar_fi_espoo": ("rocky9", "x86_64", "apptainer", "yes"),
    "pulsar_nl_amsterdam": ("debian12", "x86_64", "docker", "no"),
}
# (tool, feature index, value): failure rate where the destination has that feature value.
FEATURE_FAILURES = {
    ("toolshed.g2.bx.psu.edu/repos/iuc/kraken2/kraken2/2.1.3+galaxy1", 3, "no"): 0.35,
}


def main() -> None:
    rng = random.Random(20261118)
    ns = 1_000_000_000
    lines: list[str] = []
    config = {
        "metrics": {"source": "snapshot", "snapshot": "demo-network.lp", "staleness_s": 300},
        "destinations": {},
        "objectstores": {k: {"latitude": a, "longitude": b} for k, (a, b) in STORES.items()},
    }
    for dest, (site, lat, lon, cpus, mem_gb, gpus, speed, used, idle, store) in SITES.items():
        config["destinations"][dest] = {
            "site": site,
            "latitude": lat,
            "longitude": lon,
            **({"objectstores": [store]} if store else {}),
            "features": dict(
                zip(("os", "cpu_arch", "container", "cvmfs"), FEATURES[dest], strict=True),
                gpu="yes" if gpus else "no",
            ),
        }
        if site in NEVER_REPORTED:
            continue
        mem = mem_gb * MB_PER_GB
        cpus_free = int(cpus * (1 - used))
        mem_free = int(mem * (1 - used) * rng.uniform(0.8, 1.0))
        running = int(cpus * used / rng.choice([1, 2, 4, 8]))
        t = T0 - SILENT.get(site, rng.randint(5, 55))
        fields = {
            "cpus": cpus,
            "cpus_free": cpus_free,
            "memory_mb": mem,
            "memory_mb_free": mem_free,
            "gpus": gpus,
            "gpus_free": gpus // 2,
            "jobs_idle": idle,
            "jobs_running": running,
            "jobs_held": rng.randint(0, 3),
            # Partitionable slots: the biggest hole on one machine shrinks as the pool fills.
            "largest_free_cpus": min(cpus_free, int(64 * (1 - used)) + 1),
            "largest_free_memory_mb": min(mem_free, (int(64 * (1 - used)) + 1) * 8 * MB_PER_GB),
        }
        lines.append(format_point(mc.CLUSTER, {mc.SITE: site}, fields, t * ns))
        for state, count in ((mc.QUEUED, idle // 2), (mc.RUNNING, running // 3)):
            if count:  # gxadmin writes no row for an empty queue
                tags = {mc.DESTINATION_ID: dest, mc.STATE: state}
                lines.append(format_point(mc.QUEUE, tags, {mc.COUNT: count}, (T0 - 30) * ns))
        for tool, (base, fail) in TOOLS.items():
            if rng.random() < 0.2:
                continue  # not every tool runs everywhere
            count = rng.randint(3, 400)
            median_run = int(base * speed * rng.uniform(0.9, 1.1))
            median_queue = int(rng.uniform(20, 600) * (1 + 5 * used))
            tags = {mc.DESTINATION_ID: dest, mc.TOOL_ID: tool}
            lines.append(
                format_point(
                    mc.RUNTIME,
                    tags,
                    {
                        "count": count,
                        "median_queue": median_queue,
                        "median_run": median_run,
                        "perc_95_queue": median_queue * 4,
                        "perc_95_run": median_run * 3,
                    },
                    (T0 - 6 * 3600) * ns,
                )
            )
            p_fail = FLAKY.get((dest, tool), fail)
            for (f_tool, index, value), rate in FEATURE_FAILURES.items():
                if f_tool == tool and FEATURES[dest][index] == value:
                    p_fail = max(p_fail, rate)
            error = sum(rng.random() < p_fail for _ in range(count))
            lines.append(
                format_point(
                    mc.OUTCOMES,
                    tags,
                    {"ok": count - error, "error": error, "window_days": 7},
                    (T0 - 600) * ns,
                )
            )
    for site, g_per_kwh in CARBON.items():  # after the loop: its random draws stay the same
        t = T0 - SILENT.get(site, 0) - 1200
        carbon_fields = {mc.CARBON_INTENSITY: float(g_per_kwh)}  # a float, as pulsar-util does
        lines.append(format_point(mc.CARBON, {mc.SITE: site}, carbon_fields, t * ns))
    (OUT / "demo-network.lp").write_text(
        "# Demo snapshot of a European Pulsar network (examples/generate_snapshot.py)\n"
        + "\n".join(lines)
        + "\n"
    )
    header = (
        "# Embedded default config: the demo network (generated by examples/generate_snapshot.py)\n"
    )
    (OUT / "demo-network.yml").write_text(header + yaml.safe_dump(config, sort_keys=False))


if __name__ == "__main__":
    main()
