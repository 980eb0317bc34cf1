"""The HTCondor producer's counting, on real `classad2.ClassAd` objects parsed from the
`condor_status -long` / `condor_q -long` text format (no HTCondor daemons run here). The pool
whose figures the tests check is tests/support/htcondor_pool.py."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import classad2
import pytest

from collectors import htcondor_producer
from collectors.errors import CollectorError
from collectors.htcondor_producer import aggregate, collect_state
from collectors.schema import parse_message
from tests.support.htcondor_pool import FakePool, job_ads, startd_ads


def test_ads_are_real_classads():
    ads = startd_ads()
    assert all(isinstance(ad, classad2.ClassAd) for ad in ads)
    assert ads[0].eval("Memory") == 32000  # an expression, evaluated


def test_totals_count_partitionable_slots_once_and_skip_dynamic_offline_duplicates():
    totals, slot = aggregate(startd_ads(), job_ads())
    assert totals == {
        # node1 32 + gpu1 16 + static 1+1 + drain1 8; offline and dynamic slots not added
        "cpus": 58,
        # node1's unclaimed 8 + gpu1 16 + one static slot; drained and claimed are not free
        "cpus_free": 25,
        "memory_mb": 128000 + 64000 + 4000 + 4000 + 32000,
        "memory_mb_free": 32000 + 64000 + 4000,
        "gpus": 2,
        "gpus_free": 2,
        "jobs_idle": 3,
        "jobs_running": 4,
        "jobs_held": 1,
    }
    # the biggest job that fits now: gpu1's whole machine, not the sum of scattered cores
    assert slot == {"cpus": 16, "memory_mb": 64000, "gpus": 2}


def test_full_pool_has_no_free_slot():
    full = [ad for ad in startd_ads() if ad.eval("State") != "Unclaimed"]
    totals, slot = aggregate(full, [])
    assert totals["cpus_free"] == 0 and totals["memory_mb_free"] == 0
    assert slot == {"cpus": 0, "memory_mb": 0, "gpus": 0}
    assert totals["cpus"] == 1 + 8


def test_undefined_and_error_attributes_count_as_missing():
    ads = [classad2.ClassAd('[ Name = "s@x"; State = "Unclaimed"; Cpus = error; Memory = 10 ]')]
    totals, _ = aggregate(ads, [classad2.ClassAd("[ JobStatus = undefined ]")])
    assert totals["cpus"] == 0 and totals["cpus_free"] == 0
    assert totals["jobs_idle"] == 0


def test_collect_state_builds_a_message_the_consumer_accepts():
    state = collect_state(FakePool(startd_ads(), job_ads()), "pulsar_eu01", now=1_760_000_000.0)
    parsed = parse_message(state.to_json(), now=1_760_000_000.0)
    assert parsed.site == "pulsar_eu01"
    assert parsed.totals["cpus_free"] == 25
    assert parsed.collected_at == 1_760_000_000.0


def test_collect_state_propagates_an_unreachable_pool_and_builds_nothing():
    class Down(FakePool):
        def job_ads(self):
            raise CollectorError("HTCondor schedd s1 cannot be queried: boom")

    with pytest.raises(CollectorError, match="schedd s1"):
        collect_state(Down(startd_ads(), []), "pulsar_eu01")


def test_dry_run_prints_the_message_and_publishes_nothing():
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = htcondor_producer.main(
            ["--site", "pulsar_eu01", "--dry-run", "--amqp-url", "amqp://guest:guest@127.0.0.1:1/"],
            source=FakePool(startd_ads(), job_ads()),
        )
    assert code == 0, err.getvalue()
    body = json.loads(out.getvalue())
    assert body["schema"] == 1 and body["totals"]["jobs_running"] == 4


def test_real_bindings_report_an_unreachable_collector_in_one_line(capsys):
    """The real `htcondor2` path, pointed at a closed port: a clear error, exit 3, and no
    message (the AMQP URL points nowhere either, so a publish attempt would also fail)."""
    code = htcondor_producer.main(
        ["--site", "x", "--pool", "127.0.0.1:9", "--amqp-url", "amqp://guest:guest@127.0.0.1:9/"]
    )
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1
    assert "HTCondor collector at 127.0.0.1:9 is unreachable" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dry-run"], "no site name"),
        (["--site", "bad\nname", "--dry-run"], "invalid site name"),
        (["--site", "s", "--timeout", "-1", "--dry-run"], "timeout_s must be a positive"),
    ],
)
def test_configuration_errors_exit_2(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("TPV_COLLECTOR_CONFIG", raising=False)
    monkeypatch.delenv("TPV_COLLECTOR_SITE", raising=False)
    code = htcondor_producer.main(argv, source=FakePool([], []))
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_collectors_import_nothing_of_the_broker_stack():
    """A Pulsar node has pika and the HTCondor bindings only: importing the collectors must
    not pull in FastAPI, pydantic, YAML, httpx or any broker module at all (the names and the
    codec come from metric_contract)."""
    import subprocess
    import sys

    code = (
        "import sys, collectors.amqp_consumer, collectors.htcondor_producer, "
        "collectors.job_outcomes, collectors.amqp\n"
        "heavy = {'fastapi', 'pydantic', 'yaml', 'httpx', 'numpy', 'htcondor2', 'psycopg', "
        "'broker'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "print('metric_contract.lineprotocol' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "True"]


def test_metric_contract_imports_only_the_standard_library():
    """metric_contract is installed on every host: it must not need anything else."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import metric_contract.lineprotocol, metric_contract.measurements, "
        "metric_contract.sites, metric_contract.units\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names) - {'metric_contract'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
