"""What the broker keeps beyond one request: the in-flight ledger (in process or in Redis) and
ARBO's run store (SQLite or PostgreSQL). Both hold secrets in their URLs (kept out of ``repr``)."""

from __future__ import annotations

from pydantic import Field

from broker.config.section import Section


class LedgerSettings(Section):
    """Where the in-flight ledger lives (see docs/deployment.md, "Several broker processes").
    Without a Redis URL each process keeps its own, which is right for one process."""

    redis_url: str | None = Field(
        default=None,
        repr=False,
        description="redis://[:password@]host:port/db shared by every broker process; "
        "none: in-process",
    )
    key_prefix: str = Field(
        default="tpv_broker:", min_length=1, description="prefix of every key the ledger writes"
    )
    timeout_s: float = Field(
        default=0.5, gt=0, le=10, description="a Redis command taking longer counts as a failure"
    )
    retry_s: float = Field(
        default=1.0, gt=0, le=300, description="wait before reconnecting to a Redis that failed"
    )


class ArboSettings(Section):
    """ARBO: parallelism per workflow task from its run history (see docs/arbo.md)."""

    database_url: str | None = Field(
        default=None,
        repr=False,
        description="SQLAlchemy URL of the run store; default SQLite at <state_dir>/arbo.sqlite",
    )
    window: int = Field(default=50, ge=3, le=1000, description="recent runs a task's fit uses")
    retain_runs: int = Field(default=1000, ge=10, description="runs kept per task; older pruned")
    max_s: int = Field(default=64, ge=1, le=4096, description="upper bound on s when not asked")
    confidence: float = Field(default=0.9, gt=0.5, lt=1, description="SLO confidence if not asked")
    gp_min_runs: int = Field(default=8, ge=3, description="runs before the residual GP is used")
    max_run_seconds: float = Field(
        default=30 * 86400, gt=0, description="reported durations above this are rejected"
    )
