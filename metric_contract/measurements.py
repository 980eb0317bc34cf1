"""Measurement, tag and field names of the metric contract: the five measurements the broker
ranks with, the broker's decision log and the per-attempt outcomes joined to it.

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
# a site's grid carbon intensity: the name ansible-pulsar-util's consumer writes it under (its
# `consumer_energy_measurement` default), so that both its shape and this suite's share it
CARBON = "pulsar_carbon_intensity"
# the ones the ranking reads (newest point)
MEASUREMENTS = (CLUSTER, QUEUE, RUNTIME, OUTCOMES, CARBON)
DECISIONS = "routing_decision"  # one point per routing decision; the broker
ATTEMPT_OUTCOMES = "job_attempt_outcome"  # one point per finished attempt; attempt_outcomes

# --- tags ---
SITE = "site"  # an HTCondor pool / Pulsar endpoint; its rule is in metric_contract.sites
DESTINATION_ID = "destination_id"  # a TPV destination id (= Galaxy's job.destination_id)
TOOL_ID = "tool_id"  # a Galaxy tool id
STATE = "state"  # of a QUEUE point: one of QUEUE_STATES
# The Galaxy server a gxadmin or job-outcomes point comes from: the tag Telegraf adds to every
# point (its hostname, or `agent.hostname`). Points of several servers are combined per
# destination by the broker, not overwritten.
HOST = "host"
QUEUED = "queued"
RUNNING = "running"
QUEUE_STATES = (QUEUED, RUNNING)

# The tags that identify one series of each measurement (the broker keeps the newest point of
# each series; InfluxQL groups by these). `host` may be absent (one Galaxy, or written without
# Telegraf): the series is then the one without it.
SERIES_TAGS: dict[str, tuple[str, ...]] = {
    CLUSTER: (SITE,),
    QUEUE: (DESTINATION_ID, STATE, HOST),
    RUNTIME: (DESTINATION_ID, TOOL_ID, HOST),
    OUTCOMES: (DESTINATION_ID, TOOL_ID, HOST),
    CARBON: (SITE,),
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

# grams of CO2-equivalent per kWh drawn from the grid where the site is (Electricity Maps'
# `carbonIntensity`, the figure ansible-pulsar-util's consumer writes under this name)
CARBON_INTENSITY = "carbon_intensity"
CARBON_FIELDS = (CARBON_INTENSITY,)

FIELDS: dict[str, tuple[str, ...]] = {
    CLUSTER: CLUSTER_FIELDS,
    QUEUE: QUEUE_FIELDS,
    RUNTIME: RUNTIME_FIELDS,
    OUTCOMES: OUTCOME_FIELDS,
    CARBON: CARBON_FIELDS,
}

# --- the decision log: `routing_decision` (one point per routing decision) ---
CHOSEN_BY = "chosen_by"  # tag: who chose the destination the job was routed to
BY_BROKER = "broker"
BY_FALLBACK = "fallback"
MODE = "mode"  # tag: the rank snippet's mode
ENFORCE = "enforce"
SHADOW = "shadow"
DECISION_TAGS = (DESTINATION_ID, TOOL_ID, CHOSEN_BY, MODE)  # DESTINATION_ID: the one used
JOB_ID = "job_id"  # int: Galaxy's job id (the same for every attempt)
ATTEMPT = "attempt"  # int, 1-based
DECISION = "decision"  # string: the decision's unique id
BROKER_RANK = "broker_rank"  # int: the used destination's place in the answer, 0 = first
BROKER_CHOICE = "broker_choice"  # string: the broker's first choice
TRANSFER_S = "transfer_s"  # the used destination's predictions ...
WAIT_S = "wait_s"
RUN_S = "run_s"
P_SUCCESS = "p_success"
METRIC_AGE_S = "metric_age_s"  # omitted when unknown
CANDIDATES = "candidates"  # string: JSON array of the candidate ids, in TPV's order
BROKER_ORDER = "broker_order"  # string: JSON array of positions in CANDIDATES, broker's order
# every candidate's predictions: JSON arrays in the order of CANDIDATES (null: unknown or, for
# the wait, never fits); the metric time is the epoch second of the site's cluster point
CANDIDATE_TRANSFER_S = "candidate_transfer_s"
CANDIDATE_WAIT_S = "candidate_wait_s"
CANDIDATE_RUN_S = "candidate_run_s"
CANDIDATE_P_SUCCESS = "candidate_p_success"
CANDIDATE_METRIC_TIME_S = "candidate_metric_time_s"
CANDIDATE_FIELDS = (
    CANDIDATE_TRANSFER_S,
    CANDIDATE_WAIT_S,
    CANDIDATE_RUN_S,
    CANDIDATE_P_SUCCESS,
    CANDIDATE_METRIC_TIME_S,
)
DECISION_FIELDS = (
    JOB_ID,
    ATTEMPT,
    DECISION,
    BROKER_RANK,
    BROKER_CHOICE,
    TRANSFER_S,
    WAIT_S,
    RUN_S,
    P_SUCCESS,
    METRIC_AGE_S,
    CANDIDATES,
    BROKER_ORDER,
    *CANDIDATE_FIELDS,
)

# --- `job_attempt_outcome` (one point per finished attempt of a job) ---
# tags: DESTINATION_ID, TOOL_ID, STATE (Galaxy's final state of the attempt; a resubmitted
# attempt is ATTEMPT_RESUBMITTED_STATE); fields: JOB_ID, ATTEMPT, QUEUE_S, RUN_S, OK.
ATTEMPT_TAGS = (DESTINATION_ID, TOOL_ID, STATE)
ATTEMPT_RESUBMITTED_STATE = "error"
QUEUE_S = "queue_s"
ATTEMPT_FIELDS = (JOB_ID, ATTEMPT, QUEUE_S, RUN_S, OK)
# Which attempt states count for a destination's success rate (the job-outcomes rule: deleted
# and stopped are the user's doing, not the destination's).
OK_STATES = ("ok",)
ERROR_STATES = ("error", "failed")
