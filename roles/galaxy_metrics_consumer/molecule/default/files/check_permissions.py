"""Molecule: what each RabbitMQ user the role created may do, tried against the real RabbitMQ.

Every attempt runs on a fresh channel; the result is "ok" or the broker's reply code (403 for
ACCESS_REFUSED). Prints one JSON object: attempt name -> result.

    python check_permissions.py AMQP_BASE_URL VHOST_PATH EXCHANGE QUEUE
"""

import json
import sys
import time

import pika
import pika.exceptions

BASE, VHOST, EXCHANGE, QUEUE = sys.argv[1:5]
USERS = {
    "site_a": ("tpv_producer_molecule_site", "producer-secret"),
    "site_b": ("tpv_producer_other_site", "other-secret"),
    "consumer": ("tpv_consumer", "consumer-secret"),
}
BODY = json.dumps(
    {
        "schema": 1,
        "site": "other_site",
        "collected_at": time.time(),
        "totals": {
            "cpus": 1,
            "cpus_free": 1,
            "memory_mb": 1,
            "memory_mb_free": 1,
            "gpus": 0,
            "gpus_free": 0,
            "jobs_idle": 0,
            "jobs_running": 0,
            "jobs_held": 0,
        },
        "largest_free_slot": {"cpus": 1, "memory_mb": 1, "gpus": 0},
    }
)


def attempt(who, action):
    user, password = USERS[who]
    creds = pika.PlainCredentials(user, password)
    params = pika.URLParameters(f"{BASE}/{VHOST}")
    params.credentials = creds
    conn = pika.BlockingConnection(params)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        action(channel)
        return "ok"
    except pika.exceptions.ChannelClosedByBroker as exc:
        return exc.reply_code
    finally:
        if conn.is_open:
            conn.close()


def publish(routing_key, exchange=EXCHANGE):
    def run(channel):
        channel.basic_publish(
            exchange,
            routing_key,
            BODY,
            pika.BasicProperties(delivery_mode=2),
            mandatory=True,
        )

    return run


results = {
    # A site's credential publishing for another site: refused (topic permission).
    "site_a_publishes_as_site_b": attempt("site_a", publish("htcondor.other_site")),
    "site_a_publishes_wildcard_key": attempt("site_a", publish("htcondor.#")),
    "site_a_publishes_to_other_exchange": attempt(
        "site_a", publish("htcondor.molecule_site", "amq.topic")
    ),
    "site_a_reads_queue": attempt("site_a", lambda ch: ch.basic_get(QUEUE, auto_ack=False)),
    "site_a_deletes_queue": attempt("site_a", lambda ch: ch.queue_delete(QUEUE)),
    "site_a_purges_queue": attempt("site_a", lambda ch: ch.queue_purge(QUEUE)),
    "site_a_declares_queue": attempt(
        "site_a", lambda ch: ch.queue_declare("intruder", durable=True)
    ),
    "site_a_binds_queue": attempt("site_a", lambda ch: ch.queue_bind(QUEUE, EXCHANGE, "#")),
    "consumer_publishes": attempt("consumer", publish("htcondor.molecule_site")),
    # What the producer does on each run: declare the exchange, publish its own key.
    "site_b_declares_exchange": attempt(
        "site_b", lambda ch: ch.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    ),
    "site_b_publishes_own_key": attempt("site_b", publish("htcondor.other_site")),
    # The consumer reads the queue (unacknowledged: the message goes back when it closes).
    "consumer_reads_queue": attempt("consumer", lambda ch: ch.basic_get(QUEUE, auto_ack=False)),
}
print(json.dumps(results, sort_keys=True))
