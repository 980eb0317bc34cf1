"""The carbon term: both shapes of `pulsar_carbon_intensity` read, the kg of each candidate in
the explanation, and the order moved only when the administrator gives carbon a price."""

from __future__ import annotations

import pytest

from broker.metrics.pulsar_util import CARBON_SHAPE
from broker.metrics.series import OWN_SHAPE
from broker.metrics.view import MetricsView
from metric_contract.lineprotocol import Point, format_point, parse_lines, parse_text
from tests.support.paths import ROOT
from tests.support.ranking import NOW, NS, by_id, ranked, request, runtime, settings, usage, view_of

CARBON_FIXTURE = ROOT / "tests" / "fixtures" / "pulsar_util" / "carbon.lp"
FIXTURE_T = 1764590400  # its newest timestamp


def intensity(site, g, t=NOW - 600):
    return format_point("pulsar_carbon_intensity", {"site": site}, {"carbon_intensity": g}, t * NS)


def network(*carbon_lines):
    """Three destinations alike in everything but their grid (run 600 s, half free)."""
    lines = [usage(s) for s in ("a", "b", "pool_c")]
    lines += [runtime(d) for d in ("a", "b", "c")]
    return view_of(*lines, *carbon_lines)


def test_both_shapes_are_read_and_the_newest_point_of_a_site_wins():
    points = list(parse_text(CARBON_FIXTURE.read_text()))
    points += list(
        parse_lines(
            [
                intensity("pulsar_de02", 100, t=FIXTURE_T - 60),  # older than pulsar-util's
                intensity("pulsar_pl01", 640, t=FIXTURE_T),  # newer than pulsar-util's
            ]
        )
    )
    carbon = MetricsView.from_points(points, source="test").carbon
    assert carbon["pulsar_de02"].g_per_kwh == 412 and carbon["pulsar_de02"].shape == CARBON_SHAPE
    assert carbon["pulsar_fr01"].g_per_kwh == 38
    assert carbon["pulsar_pl01"].g_per_kwh == 640 and carbon["pulsar_pl01"].shape == OWN_SHAPE
    assert carbon["pulsar_pl01"].time_s == FIXTURE_T


def test_a_point_without_a_usable_intensity_or_site_is_ignored():
    view = view_of(
        intensity("neg", -5),
        format_point("pulsar_carbon_intensity", {"site": "text"}, {"carbon_intensity": "n/a"}),
        format_point("pulsar_carbon_intensity", {"site": "none"}, {"price_day_ahead": 80.0}),
        format_point("pulsar_carbon_intensity", {}, {"carbon_intensity": 300.0}),  # whose?
        format_point(
            "pulsar_carbon_intensity", {}, {"carbon_intensity": 90.0, "destination_id": '"q"'}
        ),
    )
    assert set(view.carbon) == {"q"}  # the quotes a pulsar-util tag keeps are stripped too


def test_without_a_price_the_order_is_unchanged_and_the_kg_are_shown():
    view = network(intensity("a", 600), intensity("b", 50), intensity("pool_c", 300))
    answer = ranked(view, request())
    assert answer.sorted_destinations == ["a", "b", "c"]  # alike: TPV's order
    rows = by_id(answer)
    # 600 s x 1 core x 10 W (ranking.watts_per_core) x 600 g/kWh = 1 g
    assert rows["a"].carbon_kg == pytest.approx(0.001)
    assert rows["b"].carbon_kg == pytest.approx(0.001 * 50 / 600, rel=1e-3)
    assert {r.carbon_s for r in rows.values()} == {0.0}
    assert "not priced" in rows["a"].terms["carbon"]
    assert rows["a"].metric_ages.carbon_intensity_s == 600


def test_a_price_on_carbon_sends_the_job_to_the_cleaner_grid():
    view = network(intensity("a", 600), intensity("b", 50), intensity("pool_c", 300))
    cfg = settings(ranking={"carbon_s_per_kg": 100_000, "preference_step_s": 0})
    answer = ranked(view, request(), cfg)
    assert answer.sorted_destinations == ["b", "c", "a"]
    rows = by_id(answer)
    assert rows["a"].carbon_s == pytest.approx(100.0)  # 0.001 kg x 100,000 s/kg
    gap = (rows["a"].carbon_s - rows["b"].carbon_s) / rows["a"].p_success
    assert rows["a"].expected_s - rows["b"].expected_s == pytest.approx(gap, abs=0.2)
    assert "x 100000 s/kg = 100.0 s" in rows["a"].terms["carbon"]


def test_a_site_without_a_current_intensity_is_given_the_mean_of_those_with_one():
    old = NOW - 3 * 3600  # past metrics.carbon_staleness_s (2 h)
    view = network(intensity("a", 600), intensity("b", 100), intensity("pool_c", 10, t=old))
    rows = by_id(ranked(view, request(), settings(ranking={"carbon_s_per_kg": 100_000})))
    assert rows["c"].carbon_kg == pytest.approx(rows["a"].carbon_kg * 350 / 600, rel=1e-3)
    assert "mean of 2 sites" in rows["c"].terms["carbon"]
    assert rows["c"].metric_ages.carbon_intensity_s is None
    nothing = by_id(ranked(network(), request(), settings(ranking={"carbon_s_per_kg": 1e5})))
    assert {r.carbon_s for r in nothing.values()} == {0.0}
    assert "no current carbon intensity for any site" in nothing["a"].terms["carbon"]


def test_a_destinations_own_power_figures_count_cores_and_gpus():
    view = network(intensity("a", 600), intensity("b", 600), intensity("pool_c", 600))
    cfg = settings(
        destinations={
            "a": {"watts_per_core": 20.0},
            "b": {"watts_per_gpu": 150.0},
            "c": {"site": "pool_c"},
        },
    )
    job = {"tool_id": "toolshed/repos/iuc/bwa/bwa_mem/1.0", "cores": 2, "mem": 1, "gpus": 1}
    rows = by_id(ranked(view, request(job_info=job), cfg))
    kg_per_w = 600 / 3600 / 1000 * 600 / 1000  # 600 s at 600 g/kWh
    assert rows["a"].carbon_kg == pytest.approx(kg_per_w * (2 * 20 + 300), rel=1e-3)
    assert rows["b"].carbon_kg == pytest.approx(kg_per_w * (2 * 10 + 150), rel=1e-3)
    assert rows["c"].carbon_kg == pytest.approx(kg_per_w * (2 * 10 + 300), rel=1e-3)


def test_unpriced_intensities_change_no_answer_not_even_a_snapshots_clock():
    """A carbon point newer than everything else would move a snapshot's frozen clock (and
    turn sites stale) if it counted as a metric of the view: it does not."""
    later = NOW + 400  # were it the clock, every cluster point would be past staleness_s (300 s)
    plain = ranked(network(), request())
    with_carbon = ranked(network(intensity("a", 600, t=later), intensity("b", 50)), request())
    assert with_carbon.sorted_destinations == plain.sorted_destinations
    for before, after in zip(
        plain.explanation.destinations, with_carbon.explanation.destinations, strict=True
    ):
        assert (after.expected_s, after.wait_s, after.state) == (
            before.expected_s,
            before.wait_s,
            before.state,
        )
    assert view_of(intensity("a", 600)).empty  # carbon alone ranks nothing: /health degraded


def test_an_implausible_intensity_or_site_name_is_ignored():
    points = list(
        parse_lines(
            [intensity("a", 1e308), intensity("b", 5000.0)]  # a: a unit error, would overflow
        )
    )
    # as the InfluxDB source hands them over (JSON, not line protocol): names no site may have
    points += [
        Point("pulsar_carbon_intensity", {"site": "back\\slash"}, {"carbon_intensity": 90.0}),
        Point(
            "pulsar_carbon_intensity", {}, {"carbon_intensity": 90.0, "destination_id": "x\u0007y"}
        ),
    ]
    view = MetricsView.from_points(points, source="test")
    assert {s: c.g_per_kwh for s, c in view.carbon.items()} == {"b": 5000.0}


def test_the_mean_for_a_silent_site_is_over_the_configured_sites_only():
    # "elsewhere" reports into the same InfluxDB but is no destination of this broker
    view = network(intensity("a", 600), intensity("b", 100), intensity("elsewhere", 2000))
    rows = by_id(ranked(view, request()))
    assert "mean of 2 sites" in rows["c"].terms["carbon"]
    assert rows["c"].carbon_kg == pytest.approx(rows["a"].carbon_kg * 350 / 600, rel=1e-3)
