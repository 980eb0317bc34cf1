"""`make demo`'s runner: a real server on a free port, the example requests over HTTP."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_demo_prints_a_table_per_example_request():
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "broker.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    requests = sorted(p.stem for p in (ROOT / "examples" / "requests").glob("*.json"))
    for name in requests:
        assert f"{name}:" in out
    assert out.count("P(success)") == len(requests)
    # the 36 GB of the bwa-mem job sit in Bari: nothing to move there, minutes elsewhere
    bwa = out.split("bwa-mem-data-in-bari:")[1].split("\n\n")[0]
    assert re.search(r"pulsar_it_bari\s+fresh\s+[01] s", bwa), bwa
    assert re.search(r"pulsar_be_ghent\s+fresh\s+\d{3} s", bwa), bwa


def test_a_server_that_dies_is_reported_with_its_error_not_waited_for():
    from broker.demo import ServerError, serving

    env = {"PATH": "/usr/bin:/bin", "TPV_BROKER_METRICS__SOURCE": "bogus"}
    command = ["broker.cli", "serve", "--port"]
    with (
        pytest.raises(ServerError, match="metrics.source"),
        serving(lambda port: [*command, str(port)], env),
    ):
        pass
