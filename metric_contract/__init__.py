"""The metric contract: what the collectors write to InfluxDB and what the broker reads back.

One neutral package, imported by the collectors (on Pulsar nodes and the Galaxy server), by the
broker's metric readers and by the simulator, so the names cannot drift apart between writer and
reader. It depends on nothing but the standard library: a Pulsar node installs it next to pika
and the HTCondor bindings without any of the broker's stack.

- `metric_contract.measurements`: measurement, tag and field names of the four measurements.
- `metric_contract.lineprotocol`: the InfluxDB line-protocol codec (format and parse).
- `metric_contract.sites`: the one rule for what a site name may hold.
- `metric_contract.units`: the units rule (metrics are MB, TPV's `mem` is GB).

The human-readable version is docs/metric-contract.md.
"""
