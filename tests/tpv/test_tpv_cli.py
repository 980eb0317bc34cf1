"""TPV's own tools on the rendered config: `tpv lint` accepts it (including mypy over the snippet)
and `tpv dry-run --explain` shows the broker's ranking. Also: examples/tpv is the role's output.
"""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.support.live_broker import SITES, TOKEN, Broker
from tests.support.paths import ROOT, TPV_FIXTURES
from tests.support.rank_fragment import render_fragment
from tests.support.real_tpv import BWA, GIB, TPV_ORDER, tpv_cli

BASE = str(TPV_FIXTURES / "tpv-base.yml")
EXAMPLES = ROOT / "examples" / "tpv"


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


def test_examples_are_what_the_role_renders(tmp_path):
    rendered = render_fragment(
        tmp_path / "tpv_broker_rank.yml",
        **yaml.safe_load((EXAMPLES / "vars.yml").read_text()),
    ).read_text()
    assert rendered == (EXAMPLES / "tpv_broker_rank.yml").read_text(), (
        "examples/tpv/tpv_broker_rank.yml is stale: re-render it as examples/tpv/README.md says"
    )


def test_tpv_lint_accepts_the_rendered_config(lint_run):
    code, out, err = finish(lint_run)
    assert code == 0, f"{out}\n{err}"
    assert "lint successful" in out + err, f"{out}\n{err}"
    # No warning either: T103 would be a mypy error in the snippet (checked against TPV's own
    # types), T101 a default entity that lost its `abstract`, T104 a misplaced field.
    assert not re.search(r"\bT1\d\d\b", out + err), f"{out}\n{err}"


def test_tpv_dry_run_shows_the_broker_ranking(tpv_venv, tpv_workdir, broker, fragments, busy):
    live = fragments(
        "live", tpv_broker_rank_url=f"{broker.url}/process_data", tpv_broker_rank_token=TOKEN
    )
    busy("pulsar_be_ghent")  # TPV's favourite is full: the broker sends the job elsewhere
    code, out, err = finish(
        tpv_cli(
            "-vv",  # log (to stdout) warnings too, so a fallback line would show
            "dry-run",
            "--job-conf",
            str(TPV_FIXTURES / "job_conf.yml"),
            "--tool",
            BWA,
            "--input-size",
            "20",
            "--explain",
            BASE,
            str(live),
            cwd=tpv_workdir / "dry-run",
        )
    )
    assert code == 0, err
    shown = re.findall(r"#\d+ (\S+) \(score: ", err)
    # dry-run's one input has no object store: the same request, sent to the broker directly.
    expected = Broker.rank(
        broker,
        {
            "destinations": [
                {"id": d, "context": {"latitude": lat, "longitude": lon}}
                for d, (_site, lat, lon, _store) in SITES.items()
            ],
            "datasets": {"0": {"object_store_id": None, "size": 20 * GIB}},
            "job_info": {"tool_id": BWA, "mem": 30, "cores": 16},
            "preference": TPV_ORDER,
        },
    )
    assert shown == expected
    assert expected[-1] == "pulsar_be_ghent" and expected != TPV_ORDER
    assert f"id: {expected[0]}" in out
    assert "tpv-broker rank" not in out + err  # no fallback line: the broker answered
