"""The names of the two shapes usegalaxy-eu/ansible-pulsar-util writes to `htcondor_cluster_usage`.

Sites that still run its producer and consumer (instead of this suite's) put these points in the
same measurement as the suite's own (`measurements.CLUSTER`, tag `site`); the broker reads all
three side by side (`broker.metrics.pulsar_util`, docs/metric-contract.md "Migrating from
ansible-pulsar-util"). The names follow what that role writes and must not be changed here.

Totals (its `cluster_util.sh`, until November 2025): one line per site, no `site` tag, tag
`classad=machine`, float fields summed over every startd slot (`condor_status -af ...`; memory
in MB, HTCondor's unit), `querytime` (the producer's clock, unix seconds) and the string fields
`destination_id="<vhost>"` and `destination_status="online"`. When a site stops sending, its
consumer writes one line with only `querytime`, `destination_id` and
`destination_status="offline"`.

Histogram (its `htcondor_cluster_util.py`, since November 2025): one line per shape of unclaimed
slot, tags `destination_id` (whose value carries literal double quotes: `"<vhost>"`) and
`unclaimed_tag`, fields `count` (slots of that shape), `unclaimed_cpus` and `unclaimed_memory`
(MB) of one such slot, and `destination_status`. It writes nothing about claimed slots.

Carbon (its consumer's `carbon_metrics`, measurement `pulsar_carbon_intensity`): one line per
site and consumer run, no tags, the float fields `carbon_intensity` (g CO2eq/kWh, from
Electricity Maps), `price_day_ahead` and one per source of the electricity mix, and the string
field `destination_id="<vhost>"`; no timestamp (Telegraf's).
"""

from __future__ import annotations

# --- both shapes ---
DESTINATION_ID = "destination_id"  # the AMQP vhost of the site's Pulsar: a site name here
DESTINATION_STATUS = "destination_status"  # "online", or "offline" on a figureless totals line
OFFLINE = "offline"
UNCLAIMED_CPUS = "unclaimed_cpus"
UNCLAIMED_MEMORY = "unclaimed_memory"  # MB

# --- totals ---
TOTAL_CPUS = "total_detected_cpus"
TOTAL_MEMORY = "total_memory"  # MB
TOTAL_GPU_SLOTS = "total_gpu_slots"  # slots with a CUDA device: a GPU count of at least this
UNCLAIMED_GPUS = "unclaimed_gpus"  # unclaimed slots with a CUDA device
CLAIMED_BUSY_SLOTS = "claimed_busy_slots"  # a running job each
QUERYTIME = "querytime"  # when the producer asked HTCondor, unix seconds
TOTALS_FIELDS = (
    TOTAL_CPUS,
    UNCLAIMED_CPUS,
    TOTAL_MEMORY,
    UNCLAIMED_MEMORY,
    TOTAL_GPU_SLOTS,
    UNCLAIMED_GPUS,
    CLAIMED_BUSY_SLOTS,
    QUERYTIME,
)

# --- histogram ---
UNCLAIMED_TAG = "unclaimed_tag"  # "<cpus>c_<memory>m"; see broker.metrics.pulsar_util
COUNT = "count"
HISTOGRAM_FIELDS = (COUNT, UNCLAIMED_CPUS, UNCLAIMED_MEMORY)


def site_of(destination_id: str) -> str:
    """The site a pulsar-util `destination_id` names: the value without the literal double
    quotes its producer wraps it in (a tag value keeps them; a string field does not)."""
    value = destination_id.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value
