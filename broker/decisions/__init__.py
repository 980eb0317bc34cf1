"""The decision log: what `/process_data` decided for each job, recorded off the request path.

`log` is the request side (count every decision, buffer the ones with a job id), `lines`
turns buffered decisions into `routing_decision` line protocol, `writer` posts them to InfluxDB
in the background.
"""
