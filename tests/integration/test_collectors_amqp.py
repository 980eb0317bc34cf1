"""Producer -> real RabbitMQ -> consumer, including the faults a deployment meets."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time

import pika
import pytest

from collectors import amqp_consumer, htcondor_producer
from metric_contract.lineprotocol import parse_lines
from tests.support.htcondor_pool import FakePool, job_ads, startd_ads, state
from tests.support.paths import ROOT
from tests.support.rabbitmq import AMQP_URL

pytestmark = pytest.mark.integration


def consume(topo, *extra: str) -> tuple[int, list]:
    out = io.StringIO()
    code = amqp_consumer.main(topo.consumer_args(*extra), out=out)
    return code, list(parse_lines(out.getvalue().splitlines()))


def produce(topo, site: str, pool: FakePool | None = None) -> int:
    argv = ["--site", site, "--amqp-url", AMQP_URL, "--exchange", topo.exchange]
    return htcondor_producer.main(argv, source=pool or FakePool(startd_ads(), job_ads()))


def test_producer_to_consumer_round_trip(topology):
    assert consume(topology) == (0, [])  # declares the queue; nothing queued: no output
    before = time.time()
    assert produce(topology, "pulsar eu,01=a") == 0  # a site name that needs escaping
    assert produce(topology, "pulsar_uk") == 0
    code, points = consume(topology)
    assert code == 0
    assert [p.tags["site"] for p in points] == ["pulsar eu,01=a", "pulsar_uk"]
    first = points[0]
    assert first.measurement == "htcondor_cluster_usage"
    assert first.fields["cpus_free"] == 25 and first.fields["largest_free_cpus"] == 16
    assert first.fields["jobs_idle"] == 3
    assert before - 1 <= first.time_s <= time.time()  # stamped with collected_at
    assert topology.counts() == (0, 0)  # all acknowledged


def test_messages_are_persistent_and_the_queue_durable(topology):
    consume(topology)
    produce(topology, "pulsar_eu01")
    connection, ch = topology.channel()
    try:
        method, props, body = ch.basic_get(topology.queue, auto_ack=False)
        assert props.delivery_mode == 2 and props.content_type == "application/json"
        assert method.routing_key == "htcondor.pulsar_eu01"
        assert json.loads(body)["schema"] == 1
        ch.basic_nack(method.delivery_tag, requeue=True)
        # redeclaring as non-durable is refused: the queue is durable
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="durable"):
            ch.queue_declare(topology.queue, durable=False)
    finally:
        connection.close()
    assert topology.counts() == (1, 0)


def test_malformed_messages_are_dead_lettered_and_the_rest_flows(topology, capsys):
    consume(topology)
    good = [state(f"site{i}", time.time() - 60 + i).to_json() for i in range(3)]
    bad = {
        b"{not json": "not JSON",
        json.dumps(state("s", time.time()).to_message() | {"schema": 2}).encode(): "schema 2",
        json.dumps({"schema": 1, "site": "s"}).encode(): "missing field 'collected_at'",
        state("s", time.time(), cpus_free=99).to_json(): "cpus_free (99) > totals.cpus",
    }
    bodies = [good[0], *list(bad)[:2], good[1], *list(bad)[2:], good[2]]
    topology.publish_raw(bodies)
    code, points = consume(topology)
    assert code == 0
    assert [p.tags["site"] for p in points] == ["site0", "site1", "site2"]
    err = capsys.readouterr().err
    for reason in bad.values():
        assert reason in err
    assert "Traceback" not in err
    assert topology.counts() == (0, 4)
    dead = topology.get_dead()
    assert sorted(body for _, body in dead) == sorted(bad)
    assert all(props.headers["x-death"][0]["reason"] == "rejected" for props, _ in dead)


def test_max_messages_leaves_the_rest_queued(topology):
    consume(topology)
    topology.publish_raw([state(f"s{i}", time.time()).to_json() for i in range(5)])
    code, points = consume(topology, "--max-messages", "2")
    assert code == 0 and len(points) == 2
    assert topology.counts() == (3, 0)
    assert len(consume(topology)[1]) == 3


def test_unroutable_message_is_an_error_not_a_silent_loss(topology, capsys):
    # exchange exists, no queue bound yet (the consumer never ran)
    code = produce(topology, "pulsar_eu01")
    err = capsys.readouterr().err
    assert code == 3
    assert "no queue is bound" in err and "Traceback" not in err


@pytest.mark.parametrize("module", ["collectors.amqp_consumer", "collectors.htcondor_producer"])
def test_rabbitmq_unreachable_one_line_nonzero_within_budget(module, tmp_path):
    closed = "amqp://guest:guest@127.0.0.1:9/%2F"
    args = ["--amqp-url", closed]
    if module.endswith("producer"):
        # a real pool is not available: feed the dry ClassAds through a tiny wrapper script
        script = tmp_path / "produce.py"
        script.write_text(
            "import sys\n"
            "from collectors.htcondor_producer import main\n"
            "from tests.support.htcondor_pool import FakePool, startd_ads, job_ads\n"
            "sys.exit(main(sys.argv[1:], source=FakePool(startd_ads(), job_ads())))\n"
        )
        cmd = [sys.executable, str(script), "--site", "s", "--timeout", "3", *args]
    else:
        cmd = [sys.executable, "-m", module, "--max-seconds", "3", *args]
    started = time.monotonic()
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "RabbitMQ at amqp://guest:***@127.0.0.1:9/%2F is unreachable" in proc.stderr
    assert elapsed < 3 + 5  # the budget plus interpreter start-up, never a hang


def test_consumer_killed_before_printing_loses_nothing(topology):
    """SIGKILL the exec process while it is blocked writing to a pipe nobody reads (Telegraf
    hung): whatever it had not flushed and acknowledged must come back on the next run."""
    consume(topology)
    total = 3000
    base = time.time() - 100
    topology.publish_raw([state(f"site{i:04d}", base + i / 1000).to_json() for i in range(total)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "collectors.amqp_consumer", *topology.consumer_args()],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # wait until it holds messages it cannot print
            ready, _ = topology.counts()
            if ready < total:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None, "the consumer should be blocked on the full pipe"
        proc.send_signal(signal.SIGKILL)
        first_out = proc.stdout.read().decode()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    # Killed mid-write, the pipe may end in a partial line (Telegraf drops it); that message was
    # never acknowledged, so only complete lines count as delivered.
    complete = first_out[: first_out.rfind("\n") + 1]
    first = {p.tags["site"] for p in parse_lines(complete.splitlines())}
    assert 0 < len(first) < total
    # RabbitMQ requeues what the killed consumer held once it sees the connection gone: on a
    # loaded machine that can take a moment, and a run started earlier would end on an empty
    # queue before they are back.
    deadline = time.monotonic() + 30
    while topology.counts()[0] < total - len(first) and time.monotonic() < deadline:
        time.sleep(0.1)
    code, points = consume(topology)
    second = {p.tags["site"] for p in points}
    assert code == 0
    assert first | second == {f"site{i:04d}" for i in range(total)}  # nothing lost
    assert topology.counts() == (0, 0)


def test_opened_connection_is_closed_when_the_block_fails():
    from collectors.amqp import opened
    from collectors.settings import CollectorSettings

    with (
        pytest.raises(RuntimeError, match="while publishing"),
        opened(CollectorSettings(amqp_url=AMQP_URL)) as connection,
    ):
        assert connection.is_open
        raise RuntimeError("while publishing")
    assert connection.is_closed
    with opened(CollectorSettings(amqp_url=AMQP_URL)) as connection:
        connection.close()  # closed already inside the block: no second close, no error
    assert connection.is_closed
