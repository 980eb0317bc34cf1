"""The in-flight ledger on its own, against the rule it implements written out plainly."""

import random

from broker.ranking.routed import MAX_PER_SITE, NOTHING, RoutedLedger


def test_an_entry_lasts_until_the_site_reports_after_it_is_visible():
    ledger = RoutedLedger(grace_s=60, horizon_s=300)
    ledger.add("a", now_s=1000, staging_s=40, cores=4, mem_mb=2048, gpus=1)
    # visible at 1000 + 40 + 60 = 1100
    seen = ledger.in_flight("a", reported_at_s=1099, now_s=1099)
    assert (seen.jobs, seen.cores, seen.mem_mb, seen.gpus) == (1, 4, 2048, 1)
    assert ledger.in_flight("b", reported_at_s=0, now_s=1099) is NOTHING
    assert ledger.in_flight("a", reported_at_s=1100, now_s=1100) is NOTHING
    # forgotten for good: an older report later does not bring it back
    assert ledger.in_flight("a", reported_at_s=900, now_s=1100) is NOTHING


def test_an_entry_is_forgotten_after_the_horizon_without_any_report():
    ledger = RoutedLedger(grace_s=0, horizon_s=300)
    ledger.add("a", now_s=1000, staging_s=0, cores=1, mem_mb=1, gpus=0)
    assert ledger.in_flight("a", reported_at_s=0, now_s=1299).jobs == 1
    assert ledger.in_flight("a", reported_at_s=0, now_s=1300) is NOTHING


def test_running_sums_match_the_plain_rule_on_random_traffic():
    rng = random.Random(3)
    ledger = RoutedLedger(grace_s=30, horizon_s=500)
    kept: dict[str, list[tuple[float, float, float, float]]] = {"a": [], "b": []}
    now = 0.0
    for _ in range(3000):
        now += rng.uniform(0, 5)
        site = rng.choice("ab")
        if rng.random() < 0.6:
            staging = rng.choice([0.0, 10.0, 1000.0])
            cores, mem, gpus = rng.randint(1, 16), rng.randint(1, 64) * 1024, rng.randint(0, 1)
            ledger.add(site, now, staging, cores, mem, gpus)
            kept[site].append((now + staging + 30, cores, mem, gpus))
        else:
            reported = now - rng.uniform(0, 200)
            live = [e for e in kept[site] if e[0] > reported and e[0] > now - 500]
            kept[site] = live
            seen = ledger.in_flight(site, reported, now)
            assert seen.jobs == len(live)
            assert seen.cores == sum(e[1] for e in live)
            assert seen.mem_mb == sum(e[2] for e in live)
            assert seen.gpus == sum(e[3] for e in live)


def test_entries_per_site_are_bounded():
    ledger = RoutedLedger(grace_s=0, horizon_s=1e9)
    for i in range(MAX_PER_SITE + 5):
        ledger.add("a", now_s=float(i), staging_s=0, cores=1, mem_mb=1, gpus=0)
    assert ledger.in_flight("a", reported_at_s=-1, now_s=0).jobs == MAX_PER_SITE


def test_several_sites_at_once_read_as_each_alone():
    ledger = RoutedLedger(grace_s=0, horizon_s=1000)
    ledger.add("a", now_s=100, staging_s=50, cores=4, mem_mb=1024, gpus=0)
    ledger.add("a", now_s=100, staging_s=500, cores=2, mem_mb=512, gpus=1)
    ledger.add("b", now_s=100, staging_s=50, cores=8, mem_mb=4096, gpus=0)
    # a reported after its first job was visible, b before; c never had a job
    asked = [("a", 200.0), ("b", 120.0), ("c", 0.0)]
    assert ledger.sums(asked, now_s=200) == [(1, 2, 512, 1), (1, 8, 4096, 0), (0, 0.0, 0.0, 0.0)]
    assert ledger.in_flight("a", 200.0, 200).cores == 2  # what the batch read forgot stays gone
