"""An InfluxDB filled for the broker's source tests: cluster usage and history points of a
two-site network, and the broker settings that read it."""

from __future__ import annotations

from broker.config import Settings
from metric_contract.lineprotocol import format_point

TOOL = "toolshed/repos/devteam/bwa/bwa_mem/0.7.17.2"


def usage_line(site: str, free: int, t_s: float, idle: int = 0) -> str:
    fields = {
        "cpus": 64,
        "cpus_free": free,
        "memory_mb": 262144,
        "memory_mb_free": free * 4096,
        "gpus": 0,
        "gpus_free": 0,
        "jobs_idle": idle,
        "jobs_running": 64 - free,
        "jobs_held": 0,
        "largest_free_cpus": free,
        "largest_free_memory_mb": free * 4096,
    }
    return format_point("htcondor_cluster_usage", {"site": site}, fields, int(t_s * 1e9))


def history_lines(t_s: float) -> list[str]:
    ns = int(t_s * 1e9)
    out = []
    for dest in ("dest_a", "dest_b"):
        tags = {"destination_id": dest, "tool_id": TOOL}
        out.append(
            format_point(
                "destination-queue-run-time",
                tags,
                {
                    "count": 40,
                    "median_queue": 60,
                    "median_run": 900,
                    "perc_95_queue": 300,
                    "perc_95_run": 2000,
                },
                ns,
            )
        )
        out.append(format_point("job_outcomes", tags, {"ok": 39, "error": 1, "window_days": 7}, ns))
    return out


def settings_for(influx, **metrics) -> Settings:
    return Settings.model_validate(
        {
            "metrics": {
                "source": "influxdb",
                "staleness_s": 120,
                "influxdb": {
                    "url": influx.url,
                    "database": influx.database,
                    "timeout_s": 1.0,
                    "refresh_s": 0.2,
                },
                **metrics,
            },
            "destinations": {
                "dest_a": {"site": "site_a", "latitude": 48.0, "longitude": 7.8},
                "dest_b": {"site": "site_b", "latitude": 51.0, "longitude": 3.7},
            },
        }
    )


REQUEST = {
    "destinations": [{"id": "dest_a"}, {"id": "dest_b"}],
    "job_info": {"tool_id": TOOL, "cores": 8, "mem": 16},
}
