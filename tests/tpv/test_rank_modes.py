"""Modes of the rank snippet, its fallback rank expression and the job's identity, inside the real
TPV 3.3 and Galaxy libraries, against a live broker (behind a recording proxy).

The administrator's own rank is `helpers.weighted_random_sampling(candidate_destinations)` (what
usegalaxy.eu routes by); TPV's helper draws from Python's `random`, which the TPV worker seeds
before each job, so "the same job" means the same seed. The broker would send every job of these
tests to bari (its data is there); the administrator's rank spreads them over all three sites, so
each comparison below has ~2/3 of its jobs where following the broker would show.
"""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from broker.demo import free_port
from tests.support.live_broker import TOKEN, Broker
from tests.support.paths import TPV_FIXTURES
from tests.support.real_tpv import BWA, GIB, TPV_ORDER

BASE = str(TPV_FIXTURES / "tpv-base.yml")
DATA_IN_BARI = [[20 * GIB, "os_bari"]]
WEIGHTED_RANDOM = "helpers.weighted_random_sampling(candidate_destinations)"
BROKERS_CHOICE = "pulsar_it_bari"  # for a 20 GiB input in bari, with every site free


def route_jobs(tpv, configs, jobs, **request):
    request.setdefault("tool", BWA)
    request.setdefault("datasets", DATA_IN_BARI)
    answer = tpv.route(configs=[BASE, *map(str, configs)], jobs=jobs, **request)
    assert answer["error"] is None, answer
    assert len(answer["destinations"]) == len(jobs), answer
    return answer


def warnings_of(answer):
    return [r["message"] for r in answer["log"] if r["level"] in ("WARNING", "ERROR")]


def seeded_jobs(n, first_id=1000):
    return [{"job_id": first_id + i, "seed": i} for i in range(n)]


@pytest.fixture(scope="module")
def own_rank(tpv_workdir):
    """The administrator's TPV config before the broker: their rank on the default entity."""
    path = tpv_workdir / "own-rank.yml"
    own = {"tools": {"default": {"abstract": True, "rank": WEIGHTED_RANDOM}}}
    path.write_text(yaml.safe_dump(own))
    return path


@pytest.fixture(scope="module")
def routed_by_own_rank(tpv, own_rank):
    """Where the administrator's own rank alone sends 200 seeded jobs (no broker anywhere)."""
    answer = route_jobs(tpv, [own_rank], seeded_jobs(200))
    counts = Counter(answer["destinations"])
    # A spread over all three sites (about 67 each): a snippet that followed the broker (bari),
    # TPV's tags (ghent) or drew its own random numbers would not match it job for job.
    assert set(counts) == set(TPV_ORDER) and min(counts.values()) >= 35, counts
    return answer["destinations"]


def test_shadow_routes_every_job_as_the_fallback_alone_and_the_broker_hears_each(
    tpv, proxy, fragments, routed_by_own_rank
):
    shadow = fragments(
        "shadow-wrs",
        tpv_broker_rank_url=f"{proxy.url}/process_data",
        tpv_broker_rank_token=TOKEN,
        tpv_broker_rank_routing_mode="shadow",
        tpv_broker_rank_fallback=WEIGHTED_RANDOM,
    )
    proxy.take()
    jobs = seeded_jobs(200)
    answer = route_jobs(tpv, [shadow], jobs)
    assert answer["destinations"] == routed_by_own_rank
    assert warnings_of(answer) == []

    calls = proxy.take()
    assert [c["body"]["job_id"] for c in calls] == [j["job_id"] for j in jobs]
    assert all(c["status"] == 200 and c["body"]["mode"] == "shadow" for c in calls)
    # What the broker is told the job was routed to is where TPV did route it.
    assert [c["body"]["fallback_order"][0] for c in calls] == routed_by_own_rank
    assert all(sorted(c["body"]["fallback_order"]) == sorted(TPV_ORDER) for c in calls)
    # The broker ranked every job, and would have chosen differently for most of them.
    firsts = [c["answer"]["sorted_destinations"][0] for c in calls]
    assert set(firsts) == {BROKERS_CHOICE}
    differed = sum(f != used for f, used in zip(firsts, routed_by_own_rank, strict=True))
    assert differed >= 100, differed


def test_enforce_with_the_same_seeds_follows_the_broker_instead(tpv, proxy, fragments):
    """The counterpart that shows the shadow comparison can fail: same fallback, same seeds."""
    enforce = fragments(
        "enforce-wrs",
        tpv_broker_rank_url=f"{proxy.url}/process_data",
        tpv_broker_rank_token=TOKEN,
        tpv_broker_rank_fallback=WEIGHTED_RANDOM,
    )
    proxy.take()
    answer = route_jobs(tpv, [enforce], seeded_jobs(20))
    assert answer["destinations"] == [BROKERS_CHOICE] * 20
    assert [c["body"]["mode"] for c in proxy.take()] == ["enforce"] * 20


def test_each_attempt_of_a_resubmitted_job_is_a_new_call_with_the_same_job_id(
    tpv, proxy, fragments
):
    """Galaxy maps a resubmitted job again (same job, same id): the broker sees every attempt."""
    live = fragments(
        "proxied", tpv_broker_rank_url=f"{proxy.url}/process_data", tpv_broker_rank_token=TOKEN
    )
    proxy.take()
    attempts = [{"job_id": 4711}, {"job_id": 4711}, {"job_id": 4711}, {"job_id": 4712}]
    route_jobs(tpv, [live], attempts)
    assert [c["body"]["job_id"] for c in proxy.take()] == [4711, 4711, 4711, 4712]


def test_with_the_broker_stopped_enforce_routes_by_the_fallback_not_tpvs_tags(
    tpv, tpv_workdir, fragments, routed_by_own_rank
):
    broker = Broker(tpv_workdir / "broker-to-stop")
    broker.start()
    try:
        enforce = fragments(
            "enforce-wrs-stoppable",
            tpv_broker_rank_url=f"{broker.url}/process_data",
            tpv_broker_rank_token=TOKEN,
            tpv_broker_rank_fallback=WEIGHTED_RANDOM,
        )
        up = route_jobs(tpv, [enforce], seeded_jobs(5))
        assert up["destinations"] == [BROKERS_CHOICE] * 5 and warnings_of(up) == []
    finally:
        broker.stop()
    down = route_jobs(tpv, [enforce], seeded_jobs(60))
    assert down["destinations"] == routed_by_own_rank[:60]
    assert down["destinations"].count(TPV_ORDER[0]) < 40  # not TPV's tag order (all ghent)
    lines = warnings_of(down)
    assert len(lines) == 60  # one per job
    assert all("using the fallback order" in line and "ConnectionRefused" in line for line in lines)


def test_off_never_calls_the_broker(tpv, proxy, fragments, routed_by_own_rank):
    off = fragments(
        "off-wrs",
        tpv_broker_rank_url=f"{proxy.url}/process_data",
        tpv_broker_rank_token=TOKEN,
        tpv_broker_rank_routing_mode="off",
        tpv_broker_rank_fallback=WEIGHTED_RANDOM,
    )
    proxy.take()
    answer = route_jobs(tpv, [off], seeded_jobs(30))
    assert answer["destinations"] == routed_by_own_rank[:30]
    assert proxy.take() == []
    assert answer["log"] == []

    # Without a fallback expression, off is TPV's own order.
    plain_off = fragments(
        "off", tpv_broker_rank_url=f"{proxy.url}/process_data", tpv_broker_rank_routing_mode="off"
    )
    answer = route_jobs(tpv, [plain_off], [{"job_id": 1}])
    assert answer["ranking"] == TPV_ORDER
    assert proxy.take() == []


def test_a_failing_fallback_expression_gives_tpvs_order_with_one_line(tpv, fragments):
    url = f"http://127.0.0.1:{free_port()}/process_data"  # nothing listens there
    broken = fragments(
        "off-broken-fallback",
        tpv_broker_rank_url=url,
        tpv_broker_rank_routing_mode="off",
        tpv_broker_rank_fallback="candidate_destinations[0].no_such_attribute",
    )
    answer = route_jobs(tpv, [broken], [{"job_id": 1}])
    assert answer["ranking"] == TPV_ORDER
    (line,) = warnings_of(answer)
    assert "fallback rank expression failed" in line and "AttributeError" in line


def test_the_fallback_sees_tpvs_rank_context(tpv, fragments):
    """Not only candidate_destinations and helpers: the job, its tool and user, as in any rank."""
    url = f"http://127.0.0.1:{free_port()}/process_data"
    expression = (
        "sorted(candidate_destinations, key=lambda d: d.id, reverse=True)"
        " if user.email.endswith('@vortex.org') and tool.id.startswith('toolshed')"
        " and job.id == 9 else candidate_destinations"
    )
    fragment = fragments(
        "off-context-fallback",
        tpv_broker_rank_url=url,
        tpv_broker_rank_routing_mode="off",
        tpv_broker_rank_fallback=expression,
    )
    by_id_desc = sorted(TPV_ORDER, reverse=True)
    assert route_jobs(tpv, [fragment], [{"job_id": 9}])["ranking"] == by_id_desc
    assert route_jobs(tpv, [fragment], [{"job_id": 10}])["ranking"] != by_id_desc


@pytest.mark.parametrize(
    "kind, entity, member, outsider",
    [
        ("users", r"pilot@vortex\.org", {"user": "pilot@vortex.org"}, {}),
        ("roles", "tpv-broker-pilot", {"roles": ["tpv-broker-pilot"]}, {"roles": ["other"]}),
    ],
)
def test_a_pilot_on_a_user_or_role_only(tpv, proxy, fragments, kind, entity, member, outsider):
    pilot = fragments(
        f"pilot-{kind}",
        tpv_broker_rank_url=f"{proxy.url}/process_data",
        tpv_broker_rank_token=TOKEN,
        tpv_broker_rank_entity_kind=kind,
        tpv_broker_rank_entity=entity,
    )
    proxy.take()
    inside = route_jobs(tpv, [pilot], [{"job_id": 1}], **member)
    assert inside["destinations"] == [BROKERS_CHOICE]
    assert [c["body"]["job_id"] for c in proxy.take()] == [1]
    outside = route_jobs(tpv, [pilot], [{"job_id": 2}], **outsider)
    assert outside["ranking"] == TPV_ORDER  # everyone else: routing as before
    assert proxy.take() == []


def test_an_entity_with_its_own_rank_wins_over_the_fragment(tpv, tpv_workdir, proxy, fragments):
    """As the docs say: a matching user (or role, or more specific tool) with a `rank:` keeps it."""
    own = tpv_workdir / "user-with-rank.yml"
    freiburg_first = "sorted(candidate_destinations, key=lambda d: d.id != 'pulsar_de_freiburg')"
    own.write_text(yaml.safe_dump({"users": {r"ford@vortex\.org": {"rank": freiburg_first}}}))
    live = fragments(
        "proxied", tpv_broker_rank_url=f"{proxy.url}/process_data", tpv_broker_rank_token=TOKEN
    )
    proxy.take()
    answer = route_jobs(tpv, [own, live], [{"job_id": 1}], user="ford@vortex.org")
    assert answer["destinations"] == ["pulsar_de_freiburg"]
    assert proxy.take() == []  # the broker was not asked
    # Anyone else gets the fragment's rank (the broker's choice).
    assert route_jobs(tpv, [own, live], [{"job_id": 2}])["destinations"] == [BROKERS_CHOICE]


BY_ID_DESC = "sorted(candidate_destinations, key=lambda d: d.id, reverse=True)"


def test_ids_the_broker_left_out_follow_in_the_fallbacks_order(tpv, fault_server, fragments):
    fragment = fragments(
        "partial-by-id",
        tpv_broker_rank_url=f"{fault_server.url}/partial/process_data",
        tpv_broker_rank_fallback=BY_ID_DESC,
    )
    answer = route_jobs(tpv, [fragment], [{"job_id": 1}])
    # The stand-in answers only bari; the fallback orders bari, freiburg, ghent (TPV: ghent first).
    assert answer["ranking"] == ["pulsar_it_bari", "pulsar_de_freiburg", "pulsar_be_ghent"]
    (line,) = warnings_of(answer)
    assert "left out ['pulsar_de_freiburg', 'pulsar_be_ghent']" in line


@pytest.mark.parametrize("fault", ["500", "hang"])
def test_shadow_routes_by_the_fallback_when_the_broker_fails(tpv, fault_server, fragments, fault):
    fragment = fragments(
        f"shadow-{fault}-by-id",
        tpv_broker_rank_url=f"{fault_server.url}/{fault}/process_data",
        tpv_broker_rank_routing_mode="shadow",
        tpv_broker_rank_fallback=BY_ID_DESC,
        tpv_broker_rank_timeout_s=0.5,
    )
    answer = route_jobs(tpv, [fragment], [{"job_id": 1}])
    assert answer["ranking"] == sorted(TPV_ORDER, reverse=True)
    (line,) = warnings_of(answer)
    assert "shadow, broker not heard, routed by the fallback order" in line
    assert fault_server.requests[-1]["body"]["mode"] == "shadow"
