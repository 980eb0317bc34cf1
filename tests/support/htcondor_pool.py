"""A small HTCondor pool as real ClassAds, for the producer's tests (no HTCondor daemons run
here): startd ads parsed from the `condor_status -long` text format, job ads in the `condor_q
-long` format, and a stand-in for the collector and schedds that returns them.
"""

from __future__ import annotations

import classad2

from collectors.schema import ClusterState

# A pool as `condor_status -long` prints it (projection of the attributes the producer asks for).
STARTD_ADS = """
MyType = "Machine"
Name = "slot1@node1.example.org"
Machine = "node1.example.org"
State = "Unclaimed"
Activity = "Idle"
PartitionableSlot = true
TotalSlotCpus = 32
TotalSlotMemory = 128000
Cpus = 8
Memory = TotalSlotMemory - 96000

MyType = "Machine"
Name = "slot1_1@node1.example.org"
Machine = "node1.example.org"
State = "Claimed"
Activity = "Busy"
DynamicSlot = true
Cpus = 16
Memory = 64000

MyType = "Machine"
Name = "slot1_2@node1.example.org"
Machine = "node1.example.org"
State = "Claimed"
Activity = "Busy"
DynamicSlot = true
Cpus = 8
Memory = 32000

MyType = "Machine"
Name = "slot1@gpu1.example.org"
Machine = "gpu1.example.org"
State = "Unclaimed"
Activity = "Idle"
PartitionableSlot = true
TotalSlotCpus = 16
TotalSlotMemory = 64000
TotalSlotGPUs = 2
Cpus = 16
Memory = 64000
GPUs = 2

MyType = "Machine"
Name = "slot1@static1.example.org"
Machine = "static1.example.org"
State = "Unclaimed"
Activity = "Idle"
Cpus = 1
Memory = 4000

MyType = "Machine"
Name = "slot2@static1.example.org"
Machine = "static1.example.org"
State = "Claimed"
Activity = "Busy"
Cpus = 1
Memory = 4000

MyType = "Machine"
Name = "slot1@static1.example.org"
Machine = "static1.example.org"
State = "Unclaimed"
Activity = "Idle"
Cpus = 1
Memory = 4000

MyType = "Machine"
Name = "slot1@drain1.example.org"
Machine = "drain1.example.org"
State = "Drained"
Activity = "Retiring"
PartitionableSlot = true
TotalSlotCpus = 8
TotalSlotMemory = 32000
Cpus = 8
Memory = 32000

MyType = "Machine"
Name = "slot1@asleep1.example.org"
Machine = "asleep1.example.org"
State = "Unclaimed"
Offline = true
PartitionableSlot = true
TotalSlotCpus = 64
TotalSlotMemory = 512000
Cpus = 64
Memory = 512000
"""

JOB_STATUSES = [1, 1, 1, 2, 2, 2, 2, 5, 4, 4, 3]


def startd_ads():
    return list(classad2.parseAds(STARTD_ADS, classad2.ParserType.Old))


def job_ads():
    text = "\n\n".join(
        f'MyType = "Job"\nClusterId = {100 + i}\nProcId = 0\nJobStatus = {status}'
        for i, status in enumerate(JOB_STATUSES)
    )
    return list(classad2.parseAds(text, classad2.ParserType.Old))


class FakePool:
    """Stands in for the collector and schedds only: the ads it returns are real ClassAds."""

    def __init__(self, startds, jobs):
        self._startds, self._jobs = startds, jobs

    def startd_ads(self):
        return self._startds

    def job_ads(self):
        return self._jobs


def state(site: str, collected_at: float, cpus_free: int = 8) -> ClusterState:
    totals = {
        "cpus": 32,
        "cpus_free": cpus_free,
        "memory_mb": 128000,
        "memory_mb_free": 32000,
        "gpus": 0,
        "gpus_free": 0,
        "jobs_idle": 0,
        "jobs_running": 3,
        "jobs_held": 0,
    }
    return ClusterState(
        site, collected_at, totals, {"cpus": cpus_free, "memory_mb": 32000, "gpus": 0}
    )
