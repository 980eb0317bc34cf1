"""Collector hardening, against the real services: a message that crashes the parser,
site names the broker could not read back, AMQP handshake timeouts, tool ids line protocol
cannot carry."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from broker.config import InfluxSettings
from broker.metrics.influx import InfluxSource
from broker.metrics.snapshot import SnapshotSource
from collectors import amqp_consumer
from metric_contract.lineprotocol import parse_text
from tests.integration.conftest import BWA
from tests.support.htcondor_pool import state
from tests.support.paths import ROOT
from tests.support.telegraf import run_module

pytestmark = pytest.mark.integration

# Far deeper than the json module's recursion allows: json.loads raises RecursionError.
DEEP = b"[" * 200_000 + b"]" * 200_000


def test_a_message_that_crashes_the_parser_is_dead_lettered_and_the_run_goes_on(topology):
    assert run_module("collectors.amqp_consumer", *topology.consumer_args()).returncode == 0
    good = [state(f"site{i}", time.time() - 10 + i).to_json() for i in range(2)]
    topology.publish_raw([good[0], DEEP, good[1]])
    proc = run_module("collectors.amqp_consumer", *topology.consumer_args())
    assert proc.returncode == 0, proc.stderr
    assert [p.tags["site"] for p in parse_text(proc.stdout)] == ["site0", "site1"]
    assert "Traceback" not in proc.stderr
    assert "dead-lettered message from 'htcondor.test'" in proc.stderr
    assert "nested too deeply" in proc.stderr
    assert topology.counts() == (0, 1)  # nothing left at the head of the queue
    assert [body for _, body in topology.get_dead()] == [DEEP]
    # the next run is not blocked by anything
    topology.publish_raw([state("site2", time.time()).to_json()])
    proc = run_module("collectors.amqp_consumer", *topology.consumer_args())
    assert proc.returncode == 0 and [p.tags["site"] for p in parse_text(proc.stdout)] == ["site2"]


def test_any_exception_while_parsing_one_message_dead_letters_only_that_one(
    topology, monkeypatch, capsys
):
    """Whatever a parser bug raises for one body is that message's problem, not the run's."""
    amqp_consumer.main(topology.consumer_args(), out=io.StringIO())
    poison = state("poison", time.time()).to_json()
    real_parse = amqp_consumer.parse_message

    def parse(body, now=None):
        if body == poison:
            raise KeyError("a bug in the parser")
        return real_parse(body, now)

    monkeypatch.setattr(amqp_consumer, "parse_message", parse)
    topology.publish_raw(
        [state("a", time.time()).to_json(), poison, state("b", time.time()).to_json()]
    )
    out = io.StringIO()
    assert amqp_consumer.main(topology.consumer_args(), out=out) == 0
    assert [p.tags["site"] for p in parse_text(out.getvalue())] == ["a", "b"]
    err = capsys.readouterr().err
    assert "cannot be parsed (KeyError: 'a bug in the parser')" in err
    assert topology.counts() == (0, 1)


def test_a_message_for_another_site_than_its_routing_key_is_dead_lettered(topology, capsys):
    """Each site's RabbitMQ user may publish only with `htcondor.<site>`: the key is who sent
    the message, so a body that reports for another site is refused, the rest flows."""
    amqp_consumer.main(topology.consumer_args(), out=io.StringIO())
    forged = state("ghent", time.time()).to_json()
    topology.publish_raw([forged], routing_key="htcondor.bari")
    topology.publish_raw([state("bari", time.time()).to_json()])  # its own key
    out = io.StringIO()
    assert amqp_consumer.main(topology.consumer_args(), out=out) == 0
    assert [p.tags["site"] for p in parse_text(out.getvalue())] == ["bari"]
    err = capsys.readouterr().err
    assert "site 'ghent' sent with routing key 'htcondor.bari'" in err
    assert [body for _, body in topology.get_dead()] == [forged]


def test_site_names_the_broker_cannot_read_back_are_dead_lettered(topology, tmp_path):
    """One rule (metric_contract.sites) for the consumer and the broker's parser: whatever the
    consumer prints, a snapshot of it loads."""
    assert run_module("collectors.amqp_consumer", *topology.consumer_args()).returncode == 0
    bad = {
        "pulsar\u2028eu": "a line separator (U+2028)",
        "pulsar\x85eu": "a control character (U+0085)",
        "pulsar\u2029eu": "a paragraph separator (U+2029)",
        "pulsar\u00a0eu": "a space other than ASCII space (U+00A0)",
    }
    bodies = [state(site, time.time()).to_json() for site in bad]
    topology.publish_raw([state("pulsar_ok", time.time()).to_json(), *bodies])
    proc = run_module("collectors.amqp_consumer", *topology.consumer_args())
    assert proc.returncode == 0, proc.stderr
    for reason in bad.values():
        assert f"site contains {reason}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert topology.counts() == (0, len(bad))
    assert sorted(json.loads(b)["site"] for _, b in topology.get_dead()) == sorted(bad)
    snapshot = tmp_path / "consumer.lp"
    snapshot.write_text(proc.stdout)
    assert list(SnapshotSource(snapshot).fetch().cluster) == ["pulsar_ok"]


@pytest.fixture
def silent_amqp_port():
    """A real TCP listener that accepts connections and never says a word: RabbitMQ overloaded
    mid-handshake, or a firewall/proxy that swallows the protocol."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.parametrize("module", ["collectors.amqp_consumer", "collectors.htcondor_producer"])
def test_amqp_handshake_timeout_is_transient_one_line_exit_3(module, silent_amqp_port, tmp_path):
    url = f"amqp://guest:guest@127.0.0.1:{silent_amqp_port}/%2F"
    if module.endswith("producer"):
        script = tmp_path / "produce.py"
        script.write_text(
            "import sys\n"
            "from collectors.htcondor_producer import main\n"
            "from tests.support.htcondor_pool import FakePool, startd_ads, job_ads\n"
            "sys.exit(main(sys.argv[1:], source=FakePool(startd_ads(), job_ads())))\n"
        )
        cmd = [str(script), "--site", "s", "--timeout", "1", "--amqp-url", url]
    else:
        cmd = ["-m", module, "--max-seconds", "1", "--amqp-url", url]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *cmd],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (
        f"RabbitMQ at amqp://guest:***@127.0.0.1:{silent_amqp_port}/%2F is unreachable: "
        "no AMQP handshake within 1 s" in proc.stderr
    )
    assert time.monotonic() - started < 1 + 5


def test_tool_ids_line_protocol_cannot_carry_are_skipped_with_a_warning(galaxy_db, influxdb):  # noqa: F811
    """Galaxy's tool_id is free text to line protocol: a newline would end the point and start
    a forged one, a trailing backslash would escape the separator after it."""
    forged = "evil\njob_outcomes,destination_id=pulsar_eu01,tool_id=forged ok=999i,error=0i"
    trailing = "toolshed.example.org/repos/x/y/1.0\\"
    with psycopg.connect(galaxy_db, autocommit=True) as conn:
        for tool in (forged, trailing):
            conn.execute(
                "INSERT INTO job (tool_id, destination_id, state, create_time, update_time) "
                "VALUES (%s, 'pulsar_eu01', 'ok', now() AT TIME ZONE 'UTC', "
                "now() AT TIME ZONE 'UTC')",
                (tool,),
            )
    proc = run_module("collectors.job_outcomes", "--dsn", galaxy_db)
    assert proc.returncode == 0, proc.stderr
    warnings = proc.stderr.splitlines()
    assert len(warnings) == 2 and all(w.startswith("job_outcomes: warning: ") for w in warnings)
    assert "contains a line break (U+000A)" in proc.stderr and repr(forged) in proc.stderr
    assert "ends with a backslash" in proc.stderr and repr(trailing) in proc.stderr
    # InfluxDB's own parser takes the output as it is (a broken line would fail the write)
    influxdb.write(proc.stdout)
    view = InfluxSource(InfluxSettings(url=influxdb.url, database=influxdb.database)).fetch()
    assert set(view.outcomes) == {
        ("pulsar_eu01", BWA),
        ("pulsar uk,2=b", BWA),
        ("local", "cat1"),
    }


def test_sites_the_rule_accepts_survive_a_real_influxdb(influxdb):
    """The codec's escaping matches InfluxDB's own parser for everything the site rule lets
    through: quotes, hashes, commas, equals signs, inner spaces, non-ASCII letters."""
    sites = ['pulsar "eu', "#pulsar", "a,b=c d", "=", "Pulsär-Ñ.1", "站点 2", 'x"y z"']
    now = time.time()
    lines = [state(site, now - 5).to_line() for site in sites]
    influxdb.write(lines)
    view = InfluxSource(InfluxSettings(url=influxdb.url, database=influxdb.database)).fetch()
    assert sorted(view.cluster) == sorted(sites)
    assert {site: view.cluster[site].cpus_free for site in sites} == dict.fromkeys(sites, 8)
