"""Molecule only: run the production producer on real ClassAd objects instead of a collector.

HTCondor daemons cannot run on the CI machines; the ClassAds are built with the `classad2`
module of the HTCondor bindings the role installed, in the shape a partitionable-slot startd
and a schedd advertise. Everything after the query is the production code path.
"""

import sys

import classad2

from collectors import htcondor_producer

STARTDS = [
    '[Name = "slot1@node1"; Machine = "node1"; State = "Unclaimed"; Activity = "Idle";'
    " PartitionableSlot = true; TotalSlotCpus = 32; TotalSlotMemory = 131072; TotalSlotGPUs = 0;"
    " Cpus = 20; Memory = 65536; GPUs = 0]",
    '[Name = "slot1_1@node1"; Machine = "node1"; State = "Claimed"; Activity = "Busy";'
    " DynamicSlot = true; Cpus = 12; Memory = 65536; GPUs = 0]",
    '[Name = "slot1@node2"; Machine = "node2"; State = "Unclaimed"; Activity = "Idle";'
    " PartitionableSlot = true; TotalSlotCpus = 16; TotalSlotMemory = 65536; TotalSlotGPUs = 1;"
    " Cpus = 16; Memory = 65536; GPUs = 1]",
]
JOBS = ["[JobStatus = 1]", "[JobStatus = 1]", "[JobStatus = 2]", "[JobStatus = 5]"]


class FixturePool:
    def startd_ads(self):
        return [classad2.parseOne(text) for text in STARTDS]

    def job_ads(self):
        return [classad2.parseOne(text) for text in JOBS]


if __name__ == "__main__":
    sys.exit(htcondor_producer.main(sys.argv[1:], source=FixturePool()))
