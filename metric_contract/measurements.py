"""Measurement, tag and field names of the four measurements the broker reads, and of the
decision log the broker writes.

Writers (the collectors, the simulator's pipeline, the demo snapshot) and readers (the broker's
InfluxDB and snapshot sources, its view of the metrics) import these names instead of spelling
the strings, so a rename happens here or nowhere. docs/metric-contract.md is the prose version.

gxadmin writes `queue_by_destination` and `destination-queue-run-time` itself (Telegraf exec);
those names are gxadmin's and must follow it, not the other way round.
"""

from __future__ import annotations

# --- measurements ---
CLUSTER = "htcondor_cluster_usage"  # one HTCondor pool (site); AMQP consumer, at collected_at
QUEUE = "queue_by_destination"  # Galaxy's queued/running jobs per destination; gxadmin
RUNTIME = "destination-queue-run-time"  # a tool's queue and run time per destination; gxadmin
OUTCOMES = "job_outcomes"  # a tool's ok/error counts per destination; collectors.job_outcomes
MEASUREMENTS = (CLUSTER, QUEUE, RUNTIME, OUTCOMES)

# --- tags ---
SITE = "site"  # an HTCondor pool / Pulsar endpoint; its rule is in metric_contract.sites
DESTINATION_ID = "destination_id"  # a TPV destination id (= Galaxy's job.destination_id)
TOOL_ID = "tool_id"  # a Galaxy tool id
STATE = "state"  # of a QUEUE point: one of QUEUE_STATES
QUEUED = "queued"
RUNNING = "running"
QUEUE_STATES = (QUEUED, RUNNING)

# The tags that identify one series of each measurement (the broker keeps the newest point of
# each series; InfluxQL groups by these).
SERIES_TAGS: dict[str, tuple[str, ...]] = {
    CLUSTER: (SITE,),
    QUEUE: (DESTINATION_ID, STATE),
    RUNTIME: (DESTINATION_ID, TOOL_ID),
    OUTCOMES: (DESTINATION_ID, TOOL_ID),
}

# --- fields ---
# A pool's totals (memory in MB): the AMQP message's `totals` keys are the same names.
CLUSTER_TOTALS = (
    "cpus",
    "cpus_free",
    "memory_mb",
    "memory_mb_free",
    "gpus",
    "gpus_free",
    "jobs_idle",
    "jobs_running",
    "jobs_held",
)
# The free slot that can take the biggest job: the AMQP message's `largest_free_slot` keys;
# written as the fields `largest_free_<key>`.
LARGEST_FREE_SLOT = ("cpus", "memory_mb", "gpus")
LARGEST_FREE_PREFIX = "largest_free_"


def largest_free_field(key: str) -> str:
    """The field name of one `largest_free_slot` key (`cpus` -> `largest_free_cpus`)."""
    if key not in LARGEST_FREE_SLOT:
        raise KeyError(f"{key!r} is not a largest_free_slot key (one of {LARGEST_FREE_SLOT})")
    return LARGEST_FREE_PREFIX + key


CLUSTER_FIELDS = CLUSTER_TOTALS + tuple(LARGEST_FREE_PREFIX + key for key in LARGEST_FREE_SLOT)

COUNT = "count"
QUEUE_FIELDS = (COUNT,)

# gxadmin writes more (avg_*, min_*, max_*, perc_99_*); these are the ones the broker reads.
# All in seconds (`gxadmin iquery destination-queue-run-time --seconds`).
MEDIAN_QUEUE = "median_queue"
MEDIAN_RUN = "median_run"
PERC_95_QUEUE = "perc_95_queue"
PERC_95_RUN = "perc_95_run"
RUNTIME_FIELDS = (COUNT, MEDIAN_QUEUE, MEDIAN_RUN, PERC_95_QUEUE, PERC_95_RUN)

OK = "ok"
ERROR = "error"
WINDOW_DAYS = "window_days"
OUTCOME_FIELDS = (OK, ERROR, WINDOW_DAYS)

FIELDS: dict[str, tuple[str, ...]] = {
    CLUSTER: CLUSTER_FIELDS,
    QUEUE: QUEUE_FIELDS,
    RUNTIME: RUNTIME_FIELDS,
    OUTCOMES: OUTCOME_FIELDS,
}


# --- the decision log: `routing_decision` (one point per candidate destination of a decision) ---
DECISIONS = "routing_decision"  # one point per candidate of one routing decision; the broker
CHOSEN_BY = "chosen_by"  # tag: who chose the destination the job was routed to
BY_BROKER = "broker"
BY_FALLBACK = "fallback"
MODE = "mode"  # tag: the rank snippet's mode
ENFORCE = "enforce"
SHADOW = "shadow"
DECISION_TAGS = (DESTINATION_ID, TOOL_ID, CHOSEN_BY, MODE)
JOB_ID = "job_id"  # int: Galaxy's job id (the same for every attempt)
ATTEMPT = "attempt"  # int, 1-based
DECISION = "decision"  # string: the decision's unique id, shared by its candidates
BROKER_RANK = "broker_rank"  # int: 0 = the broker's first choice
USED = "used"  # bool: the job was routed to this candidate
TRANSFER_S = "transfer_s"
WAIT_S = "wait_s"
RUN_S = "run_s"
P_SUCCESS = "p_success"
METRIC_AGE_S = "metric_age_s"  # omitted when unknown
DECISION_FIELDS = (
    JOB_ID,
    ATTEMPT,
    DECISION,
    BROKER_RANK,
    USED,
    TRANSFER_S,
    WAIT_S,
    RUN_S,
    P_SUCCESS,
    METRIC_AGE_S,
)
