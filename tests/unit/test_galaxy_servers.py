"""Several Galaxy servers on one Pulsar network: their gxadmin and job-outcome rows (told apart
by Telegraf's `host` tag) are combined per destination, never overwritten by the last one."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.config import ConfigError, Settings, load_settings
from broker.ranking.derived import derive
from metric_contract.lineprotocol import format_point
from tests.support.broker_app import SMALL
from tests.support.ranking import NOW, NS, TOOL, by_id, ranked, request, settings, usage, view_of


def queued(dest, count, host, t=NOW - 10):
    tags = {"destination_id": dest, "state": "queued", "host": host}
    return format_point("queue_by_destination", tags, {"count": count}, t * NS)


def runtime(dest, host, count, run, t=NOW - 3600):
    tags = {"destination_id": dest, "tool_id": TOOL, "host": host}
    fields = {"count": count, "median_run": run, "median_queue": 60, "perc_95_run": 2 * run}
    return format_point("destination-queue-run-time", tags, fields, t * NS)


def outcomes(dest, host, ok, error, t=NOW - 600):
    tags = {"destination_id": dest, "tool_id": TOOL, "host": host}
    return format_point("job_outcomes", tags, {"ok": ok, "error": error}, t * NS)


def test_two_galaxies_queues_for_one_destination_are_summed():
    view = view_of(usage("a"), queued("a", 7, "galaxy-eu"), queued("a", 5, "galaxy-fr"))
    assert view.queues["a"]["queued"].count == 12
    assert view.queue_row("a").count == 12
    assert [(p.host, p.count) for p in view.queue_row("a").parts] == [
        ("galaxy-eu", 7),
        ("galaxy-fr", 5),
    ]
    # the newest point of each server counts, not the newest of all
    later = view_of(
        usage("a"),
        queued("a", 7, "galaxy-eu", t=NOW - 70),
        queued("a", 9, "galaxy-eu", t=NOW - 10),
        queued("a", 5, "galaxy-fr", t=NOW - 40),
    )
    assert later.queue_row("a").count == 14


def test_a_queue_drained_at_one_server_counts_only_the_others():
    view = view_of(
        usage("a"),
        queued("a", 7, "galaxy-eu", t=NOW - 70),  # galaxy-eu's newest run had no row for a
        queued("b", 1, "galaxy-eu", t=NOW - 10),
        queued("a", 5, "galaxy-fr", t=NOW - 40),  # galaxy-fr runs on its own clock
    )
    assert view.queue_row("a").count == 5
    assert view.queues["a"]["queued"].count == 5


def test_a_server_that_stopped_reporting_leaves_the_sum():
    view = view_of(
        usage("a"),
        queued("a", 7, "galaxy-eu"),
        queued("a", 50, "galaxy-fr", t=NOW - 3600),  # its gxadmin stopped an hour ago
    )
    assert view.queue_row("a").count == 57  # no age limit asked
    pool = derive(view, settings()).destinations["a"].pool  # staleness 300 s
    assert pool.queued == 7


def test_history_is_pooled_with_each_servers_share_in_the_explanation():
    view = view_of(
        usage("a"),
        usage("b"),
        runtime("a", "galaxy-eu", 30, 600),
        runtime("a", "galaxy-fr", 10, 1000),
        outcomes("a", "galaxy-eu", 90, 10),
        outcomes("a", "galaxy-fr", 20, 80),
        queued("a", 3, "galaxy-eu"),
        queued("a", 1, "galaxy-fr"),
    )
    pooled = view.runtimes[("a", TOOL)]
    assert pooled.count == 40
    assert pooled.median_run == pytest.approx((30 * 600 + 10 * 1000) / 40)
    assert view.outcomes[("a", TOOL)].ok == 110 and view.outcomes[("a", TOOL)].error == 90
    exp = by_id(ranked(view, request(ids=("a", "b"))))
    servers = exp["a"].terms["servers"]
    assert "queue 4 = galaxy-eu 3, galaxy-fr 1" in servers
    assert "run times from 40 runs: galaxy-eu 30 (75%), galaxy-fr 10 (25%)" in servers
    assert "outcomes of 200 jobs: galaxy-eu 100 (50%), galaxy-fr 100 (50%)" in servers
    assert "servers" not in exp["b"].terms  # nothing pooled there


def test_a_servers_history_older_than_the_limit_is_left_out_of_the_pool():
    view = view_of(
        usage("a"),
        runtime("a", "galaxy-eu", 30, 600),
        runtime("a", "galaxy-fr", 10, 5000, t=NOW - 10 * 86400),  # history_staleness_s: 3 days
    )
    history = derive(view, settings()).history
    assert history.runtimes[("a", TOOL)].count == 30
    assert history.runtimes[("a", TOOL)].median_run == 600


def test_rows_without_a_host_tag_read_as_before():
    plain = format_point(
        "queue_by_destination", {"destination_id": "a", "state": "queued"}, {"count": 4}, NOW * NS
    )
    view = view_of(usage("a"), plain)
    assert view.queue_row("a").count == 4 and view.queue_row("a").parts == ()


def _tokens_app(tmp_path, tokens):
    base = load_settings(environ={"TPV_BROKER_STATE_DIR": str(tmp_path)})
    data = base.model_dump(exclude={"source_file"})
    data["auth"] = {"tokens": tokens}
    return create_app(Settings.model_validate(data))


def test_per_server_tokens_let_each_galaxy_in_and_the_log_names_it(tmp_path, caplog):
    app = _tokens_app(tmp_path, {"galaxy-eu": "eu-s3cret", "galaxy-fr": "fr-s3cret"})
    body = {**SMALL, "job_info": {"tool_id": TOOL, "cores": 1, "mem": 1}}
    with TestClient(app) as client, caplog.at_level(logging.INFO, logger="broker.ranking"):
        for token, name in (("eu-s3cret", "galaxy-eu"), ("fr-s3cret", "galaxy-fr")):
            caplog.clear()
            answer = client.post(
                "/process_data", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 200
            assert any(f"rank server={name} " in r.getMessage() for r in caplog.records)
        wrong = client.post("/process_data", json=body, headers={"Authorization": "Bearer eu"})
        assert wrong.status_code == 401
        assert client.post("/process_data", json=body).status_code == 401


def test_a_token_list_still_works_and_its_callers_are_numbered(tmp_path, caplog):
    app = _tokens_app(tmp_path, ["one-token", "two-token"])
    with TestClient(app) as client, caplog.at_level(logging.INFO, logger="broker.ranking"):
        answer = client.post(
            "/process_data", json=SMALL, headers={"Authorization": "Bearer two-token"}
        )
    assert answer.status_code == 200
    assert any("rank server=token 2 " in r.getMessage() for r in caplog.records)


def test_server_tokens_from_the_environment_and_their_mistakes(tmp_path):
    env = {"TPV_BROKER_STATE_DIR": str(tmp_path), "TPV_BROKER_AUTH__TOKENS__GALAXY_EU": "abc"}
    assert load_settings(environ=env).auth.named() == {"galaxy_eu": "abc"}
    same = {**env, "TPV_BROKER_AUTH__TOKENS__GALAXY_FR": "abc"}
    with pytest.raises(ConfigError, match="auth.tokens: .*two servers share a token"):
        load_settings(environ=same)
    empty = {**env, "TPV_BROKER_AUTH__TOKENS__GALAXY_FR": " "}
    with pytest.raises(ConfigError, match="empty token"):
        load_settings(environ=empty)
