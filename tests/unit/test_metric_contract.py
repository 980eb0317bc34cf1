"""The metric contract package: names, the site rule, what the codec refuses, the units rule."""

from __future__ import annotations

import dataclasses
import re

import pytest

import metric_contract.measurements as mc
from broker.metrics.influx import latest_points_query
from broker.metrics.series import ClusterUsage
from broker.metrics.snapshot import SnapshotSource
from broker.metrics.view import MetricsView, SourceError
from collectors.schema import MessageError, validate_site
from metric_contract.lineprotocol import (
    LineProtocolError,
    format_point,
    parse_line,
    parse_text,
    text_problem,
)
from metric_contract.sites import SiteNameError, site_problem
from metric_contract.sites import validate_site as contract_validate_site
from metric_contract.units import MB_PER_GB


def test_the_five_measurements_and_their_series_tags():
    assert mc.MEASUREMENTS == (
        "htcondor_cluster_usage",
        "queue_by_destination",
        "destination-queue-run-time",
        "job_outcomes",
        "pulsar_carbon_intensity",
    )
    assert set(mc.SERIES_TAGS) == set(mc.FIELDS) == set(mc.MEASUREMENTS)
    assert mc.SERIES_TAGS[mc.CLUSTER] == mc.SERIES_TAGS[mc.CARBON] == ("site",)
    assert mc.SERIES_TAGS[mc.QUEUE] == ("destination_id", "state", "host")
    assert (
        mc.SERIES_TAGS[mc.OUTCOMES]
        == mc.SERIES_TAGS[mc.RUNTIME]
        == ("destination_id", "tool_id", "host")
    )
    assert mc.OUTCOME_FIELDS == ("ok", "error", "window_days")


def test_influxql_groups_every_measurement_by_its_series_tags():
    query = latest_points_query(600)
    for name, tags in mc.SERIES_TAGS.items():
        group = ", ".join(f'"{t}"' for t in tags)
        # this suite's shape only: pulsar-util's (no `site` tag) has statements of its own
        only_own = "\"site\" != '' AND " if name in (mc.CLUSTER, mc.CARBON) else ""
        assert f'FROM "{name}" WHERE {only_own}time > now() - 600s GROUP BY {group} ' in query


def test_the_view_reads_exactly_the_contracts_cluster_fields():
    attributes = {f.name for f in dataclasses.fields(ClusterUsage)}
    attributes -= {"site", "time_s", "shape", "missing"}
    assert attributes == set(mc.CLUSTER_FIELDS)
    assert mc.largest_free_field("memory_mb") == "largest_free_memory_mb"
    with pytest.raises(KeyError, match="not a largest_free_slot key"):
        mc.largest_free_field("jobs_idle")


def test_a_point_written_with_the_contract_names_is_read_back_whole():
    fields = {name: i + 1 for i, name in enumerate(mc.CLUSTER_FIELDS)}
    line = format_point(mc.CLUSTER, {mc.SITE: "pulsar_eu01"}, fields, 1_800_000_000 * 10**9)
    usage = MetricsView.from_points([parse_line(line)], source="t").cluster["pulsar_eu01"]
    assert {name: getattr(usage, name) for name in mc.CLUSTER_FIELDS} == fields


def test_units_rule():
    assert MB_PER_GB == 1024
    from broker.ranking.models import JobInfo
    from broker.ranking.query import MB_PER_GB as ranking_factor

    assert ranking_factor is MB_PER_GB
    assert JobInfo(mem=2.5).mem_mb == 2560


@pytest.mark.parametrize(
    "site",
    ["pulsar_eu01", "pulsar eu,01=a", "Pulsär-Ñ.1", "x" * 128, 'quoted "name"', "站点"],
)
def test_valid_site_names(site):
    assert site_problem(site) is None
    assert contract_validate_site(site) == site == validate_site(site)


@pytest.mark.parametrize(
    "site, reason",
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        (None, "non-empty string, got NoneType"),
        ("x" * 129, "longer than 128"),
        ("a\\b", "backslash"),
        ("trailing\\", "backslash"),
        ("a\nb", "a control character (U+000A)"),
        ("a\tb", "a control character (U+0009)"),
        ("a\x85b", "a control character (U+0085)"),
        ("a\u2028b", "a line separator (U+2028)"),
        ("a\u2029b", "a paragraph separator (U+2029)"),
        ("a\u00a0b", "a space other than ASCII space (U+00A0)"),
        ("a\u200bb", "a format character (U+200B)"),
        ("a\x7fb", "a control character (U+007F)"),
        (" pulsar", "starts or ends with a space"),
        ("pulsar ", "starts or ends with a space"),
    ],
)
def test_invalid_site_names_say_why(site, reason):
    assert reason in site_problem(site)
    with pytest.raises(SiteNameError, match=re.escape(reason)):
        contract_validate_site(site)
    with pytest.raises(MessageError) as info:  # the consumer's check is the same rule
        validate_site(site)
    assert reason in str(info.value)


def test_the_parser_applies_the_site_rule_to_cluster_points():
    bad = "htcondor_cluster_usage,site=a\u2028b cpus=1i 1"
    with pytest.raises(LineProtocolError, match=r"site tag 'a\\u2028b': site contains a line"):
        parse_line(bad)
    # the same tag value on another measurement is not a site
    assert parse_line("other,site=a\u2028b v=1i").tags == {"site": "a\u2028b"}


def test_a_snapshot_with_an_unreadable_site_names_the_line_and_the_reason(tmp_path):
    good = format_point(mc.CLUSTER, {mc.SITE: "ok"}, {"cpus": 1}, 10**18)
    path = tmp_path / "snap.lp"
    path.write_text(good + "\n" + "htcondor_cluster_usage,site=a\x85b cpus=2i 1\n")
    with pytest.raises(
        SourceError, match=r"line 2: .*site contains a control character \(U\+0085\)"
    ):
        SnapshotSource(path).fetch()


def test_parse_text_splits_on_newline_only():
    text = "m,tool_id=a\u2028b v=1i 1\r\nm,tool_id=c v=2i 2\n"
    assert [p.tags["tool_id"] for p in parse_text(text)] == ["a\u2028b", "c"]


@pytest.mark.parametrize(
    "value, problem",
    [
        ("bwa\nforged v=1i", "contains a line break (U+000A)"),
        ("bwa\r", "contains a line break (U+000D)"),
        ("bwa\u2028x", "contains a line break (U+2028)"),
        ("toolshed/bwa\\", "ends with a backslash"),
        ("a\\ b", "has a backslash before ' '"),
        ("a\\,b", "has a backslash before ','"),
        ("a\\=b", "has a backslash before '='"),
    ],
)
def test_tag_values_line_protocol_cannot_carry_are_refused(value, problem):
    assert text_problem(value) == problem
    with pytest.raises(LineProtocolError, match="tag tool_id value") as info:
        format_point(mc.OUTCOMES, {mc.TOOL_ID: value, mc.DESTINATION_ID: "d"}, {mc.OK: 1})
    assert problem in str(info.value)


def test_backslashes_line_protocol_keeps_are_written():
    # InfluxDB 1.x keeps a backslash before an ordinary character as it is
    line = format_point("m", {"path": "C:\\galaxy\\tool"}, {"v": 1})
    assert line == "m,path=C:\\galaxy\\tool v=1i"
    assert parse_line(line).tags == {"path": "C:\\galaxy\\tool"}


def test_names_and_string_fields_with_line_breaks_are_refused():
    with pytest.raises(LineProtocolError, match="measurement"):
        format_point("m\n", {}, {"v": 1})
    with pytest.raises(LineProtocolError, match="field key"):
        format_point("m", {}, {"v\nx": 1})
    with pytest.raises(LineProtocolError, match="string field value"):
        format_point("m", {}, {"v": "two\nlines"})


def test_double_quotes_in_tag_values_are_literal():
    """Quotes open a string only in the field set; in a tag value InfluxDB keeps them as they
    are, so a site with one quote must read back (it used to fail as an unterminated string)."""
    line = format_point(mc.CLUSTER, {mc.SITE: 'pulsar "eu'}, {"note": 'a "b" c', "v": 1}, 5)
    point = parse_line(line)
    assert point.tags == {mc.SITE: 'pulsar "eu'}
    assert point.fields == {"note": 'a "b" c', "v": 1}
    assert point.time_ns == 5


def test_every_site_the_rule_accepts_reads_back_unchanged():
    """The one rule holds both ways: what the consumer accepts, the broker's parser returns
    as it was written (seeded random names over printable characters and the escaped ones)."""
    import random

    rng = random.Random(20261201)
    alphabet = [chr(c) for c in range(0x20, 0x3000) if chr(c).isprintable()]
    alphabet += list(' ,="\\#') * 200
    checked = 0
    for _ in range(5000):
        site = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        if site_problem(site) is not None:
            continue
        line = format_point(mc.CLUSTER, {mc.SITE: site}, {"cpus": 1}, 10**18)
        assert [p.tags[mc.SITE] for p in parse_text(line + "\n")] == [site], line
        checked += 1
    assert checked > 2000
