"""Metric collectors: what runs on Pulsar nodes (HTCondor producer) and on the Galaxy server
(AMQP consumer, job outcomes), all feeding InfluxDB through Telegraf's exec plugin.

Kept apart from the broker's stack on purpose: a Pulsar node installs only pika + the HTCondor
bindings, the Galaxy server only pika + psycopg. No module here depends on the broker's
package: the names they write and the line-protocol codec come from `metric_contract`, the
package the broker reads with, which has no dependencies (a unit test checks this).
"""
