"""Building blocks of the ranking tests: metrics as the line protocol the sources read, the
tests' settings and requests, and the ranking called as the app calls it."""

from broker.config import Settings
from broker.metrics.view import MetricsView
from broker.ranking.context import RankContext
from broker.ranking.derived import DerivedView, derive
from broker.ranking.models import RankRequest, RankResponse
from broker.ranking.rank import rank
from broker.ranking.routed import RoutedLedger
from metric_contract.lineprotocol import format_point, parse_lines

NOW = 1_800_000_000
NS = 1_000_000_000
TOOL = "toolshed/repos/iuc/bwa/bwa_mem/1.0"


def usage(site, t=NOW, cpus=64, free=32, mem_mb=256_000, mem_free=128_000, idle=0, running=8, **kw):
    fields = {
        "cpus": cpus,
        "cpus_free": free,
        "memory_mb": mem_mb,
        "memory_mb_free": mem_free,
        "gpus": kw.pop("gpus", 0),
        "gpus_free": kw.pop("gpus_free", 0),
        "jobs_idle": idle,
        "jobs_running": running,
        "jobs_held": 0,
        "largest_free_cpus": kw.pop("largest_cpus", free),
        "largest_free_memory_mb": kw.pop("largest_mem", mem_free),
    }
    if "largest_gpus" in kw:
        fields["largest_free_gpus"] = kw.pop("largest_gpus")
    return format_point("htcondor_cluster_usage", {"site": site}, fields, t * NS)


def runtime(dest, tool=TOOL, run=600, queue=60, count=50, t=NOW - 3600):
    tags = {"destination_id": dest, "tool_id": tool}
    fields = {"count": count, "median_run": run, "median_queue": queue}
    return format_point("destination-queue-run-time", tags, fields, t * NS)


def outcomes(dest, ok, error, tool=TOOL, t=NOW - 600):
    tags = {"destination_id": dest, "tool_id": tool}
    return format_point("job_outcomes", tags, {"ok": ok, "error": error}, t * NS)


def queued(dest, count, t=NOW - 10):
    tags = {"destination_id": dest, "state": "queued"}
    return format_point("queue_by_destination", tags, {"count": count}, t * NS)


def view_of(*lines):
    return MetricsView.from_points(parse_lines(lines), source="test", frozen=True)


def settings(**extra):
    base = {
        "metrics": {"source": "snapshot", "snapshot": "unused.lp", "staleness_s": 300},
        "destinations": {
            "a": {"latitude": 48.0, "longitude": 7.8, "objectstores": ["store_a"]},
            "b": {"latitude": 51.0, "longitude": 3.7},
            "c": {"latitude": 41.1, "longitude": 16.9, "site": "pool_c"},
        },
        "objectstores": {"store_a": {"latitude": 48.0, "longitude": 7.8}},
    }
    base.update(extra)
    return Settings.model_validate(base)


def request(ids=("a", "b", "c"), **kw):
    body = {
        "destinations": [{"id": i} for i in ids],
        "job_info": {"tool_id": TOOL, "cores": 1, "mem": 1},
    }
    body.update(kw)
    return RankRequest.model_validate(body)


def rank_with(
    req: RankRequest,
    cfg: Settings,
    derived: DerivedView,
    ledger: RoutedLedger | None = None,
    explain: bool = False,
) -> RankResponse:
    """The ranking as /process_data calls it."""
    return rank(RankContext(cfg, derived, None, ledger), req.to_query(), explain)


def ranked(view, req, cfg=None, explain=True):
    cfg = cfg or settings()
    return rank_with(req, cfg, derive(view, cfg), explain=explain)


def by_id(response):
    return {d.id: d for d in response.explanation.destinations}
