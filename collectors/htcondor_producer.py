"""Pulsar node: read the local HTCondor pool's state and publish it as one AMQP message.

Run once per minute by a systemd timer (one shot, no daemon to babysit):

    python -m collectors.htcondor_producer --site pulsar_eu01 [--config /etc/tpv-collector.toml]

What is counted, and why:
- Startd ads from the collector. A partitionable slot reports the whole machine in
  `TotalSlotCpus`/`TotalSlotMemory`/`TotalSlotGPUs` and what is still unclaimed in
  `Cpus`/`Memory`/`GPUs`; its dynamic children are already subtracted, so they are skipped
  (counting them too would count claimed cores twice). A static slot counts whole, and is free
  only when `State == "Unclaimed"`. Offline ads (`Offline == true`) are not capacity.
- The largest free slot is the free slot that can host the biggest job (most CPUs, then memory,
  then GPUs); totals alone would say "16 free cores" when they are 16 single cores on 16 nodes.
- Jobs from every schedd of the pool, by `JobStatus` (1 idle, 2 running, 5 held).

The queries are injectable (`collect_state(source, ...)` takes anything with `startd_ads()` and
`job_ads()` returning ClassAds), so tests feed real `classad2.ClassAd` objects; `CondorPool` is
the real bindings path. If the collector or a schedd cannot be queried the producer says so
and publishes nothing: a half-counted pool would look emptier than it is and attract jobs.
"""

from __future__ import annotations

import argparse
import enum
import sys
import time
from collections.abc import Iterable
from typing import Any, Protocol

from collectors.errors import EXIT_CONFIG, EXIT_OK, CollectorError, run_cli
from collectors.schema import ClusterState, MessageError, parse_message, routing_key, validate_site
from collectors.settings import (
    CollectorSettings,
    add_amqp_arguments,
    add_config_argument,
    load_settings,
    overrides_from,
)
from metric_contract.measurements import LARGEST_FREE_SLOT

STARTD_PROJECTION = [
    "Name",
    "Machine",
    "State",
    "Activity",
    "Cpus",
    "Memory",
    "GPUs",
    "TotalSlotCpus",
    "TotalSlotMemory",
    "TotalSlotGPUs",
    "PartitionableSlot",
    "DynamicSlot",
    "Offline",
]
JOB_PROJECTION = ["JobStatus"]
JOB_CONSTRAINT = "JobStatus == 1 || JobStatus == 2 || JobStatus == 5"
JOB_STATUS = {1: "jobs_idle", 2: "jobs_running", 5: "jobs_held"}


class PoolSource(Protocol):
    def startd_ads(self) -> Iterable[Any]: ...

    def job_ads(self) -> Iterable[Any]: ...


def _value(ad: Any, key: str, default: Any = None) -> Any:
    """Evaluate an attribute; missing, UNDEFINED or ERROR give `default` (ads may hold
    expressions such as `Cpus = TotalSlotCpus - 1`, so plain lookup is not enough)."""
    if key not in ad:
        return default
    try:
        value = ad.eval(key)
    except Exception:  # classad evaluation error: treat as missing, like condor_status does
        return default
    # classad2.Value.Undefined/Error is an IntEnum: check it before the plain int test.
    if isinstance(value, enum.Enum) or not isinstance(value, bool | int | float | str):
        return default
    return value


def _number(ad: Any, key: str) -> float:
    value = _value(ad, key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def aggregate(startd_ads: Iterable[Any], job_ads: Iterable[Any]) -> tuple[dict, dict]:
    """(totals, largest_free_slot) from startd and job ClassAds."""
    totals = dict.fromkeys((k for key in LARGEST_FREE_SLOT for k in (key, f"{key}_free")), 0.0)
    largest = (0.0, 0.0, 0.0)
    seen: set[str] = set()
    for ad in startd_ads:
        name = _value(ad, "Name")
        if isinstance(name, str):
            if name in seen:  # a startd re-advertising during the query: count once
                continue
            seen.add(name)
        if _value(ad, "Offline") is True or _value(ad, "DynamicSlot") is True:
            continue
        unclaimed = _value(ad, "State") == "Unclaimed"
        free = (_number(ad, "Cpus"), _number(ad, "Memory"), _number(ad, "GPUs"))
        if _value(ad, "PartitionableSlot") is True:
            whole = (
                _number(ad, "TotalSlotCpus") or free[0],
                _number(ad, "TotalSlotMemory") or free[1],
                _number(ad, "TotalSlotGPUs") or free[2],
            )
        else:
            whole = free
        for key, amount in zip(LARGEST_FREE_SLOT, whole, strict=True):
            totals[key] += amount
        if unclaimed and free[0] > 0:
            for key, amount in zip(LARGEST_FREE_SLOT, free, strict=True):
                totals[f"{key}_free"] += amount
            largest = max(largest, free)
    jobs = dict.fromkeys(JOB_STATUS.values(), 0)
    for ad in job_ads:
        status = JOB_STATUS.get(_value(ad, "JobStatus"))
        if status:
            jobs[status] += 1
    out = {k: int(round(v)) for k, v in totals.items()} | jobs
    slot = {key: int(amount) for key, amount in zip(LARGEST_FREE_SLOT, largest, strict=True)}
    return out, slot


def collect_state(source: PoolSource, site: str, now: float | None = None) -> ClusterState:
    """Query the pool (through `source`) and build a validated message."""
    validate_site(site)
    startds = list(source.startd_ads())
    jobs = list(source.job_ads())
    collected_at = time.time() if now is None else now
    totals, slot = aggregate(startds, jobs)
    state = ClusterState(site, round(collected_at, 3), totals, slot)
    try:  # the consumer would refuse it: better to fail here, on the node that has the problem
        parse_message(state.to_json(), now=collected_at)
    except MessageError as exc:
        raise CollectorError(f"refusing to publish an inconsistent state: {exc}") from None
    return state


class CondorPool:
    """The real HTCondor bindings (25.x: `htcondor2`). Imported lazily so the consumer and the
    tests of the aggregation do not need them."""

    def __init__(self, pool: str | None = None):
        try:
            import htcondor2
        except ImportError:
            raise CollectorError(
                "the HTCondor Python bindings are not installed (pip install htcondor)",
                EXIT_CONFIG,
            ) from None
        self._htcondor = htcondor2
        self.pool = pool
        self._collector = htcondor2.Collector(pool) if pool else htcondor2.Collector()

    @property
    def where(self) -> str:
        return self.pool or "the local pool (COLLECTOR_HOST)"

    def startd_ads(self) -> list[Any]:
        try:
            return self._collector.query(
                self._htcondor.AdTypes.Startd, projection=STARTD_PROJECTION
            )
        except self._htcondor.HTCondorException as exc:
            raise CollectorError(
                f"HTCondor collector at {self.where} is unreachable: {exc}"
            ) from None

    def job_ads(self) -> list[Any]:
        htcondor2 = self._htcondor
        try:
            schedds = self._collector.locateAll(htcondor2.DaemonType.Schedd)
        except htcondor2.HTCondorException as exc:
            raise CollectorError(
                f"HTCondor collector at {self.where} is unreachable: {exc}"
            ) from None
        ads: list[Any] = []
        for location in schedds:
            name = location.get("Name", "?")
            try:
                schedd = htcondor2.Schedd(location)
                ads.extend(schedd.query(constraint=JOB_CONSTRAINT, projection=JOB_PROJECTION))
            except htcondor2.HTCondorException as exc:
                raise CollectorError(f"HTCondor schedd {name} cannot be queried: {exc}") from None
        return ads


def publish(settings: CollectorSettings, state: ClusterState) -> None:
    """One persistent message, confirmed by the broker, routed `htcondor.<site>`."""
    import pika
    import pika.exceptions

    from collectors.amqp import TRANSIENT_ERRORS, declare_exchange, describe, opened

    with opened(settings) as connection:
        try:
            channel = connection.channel()
            declare_exchange(channel, settings.exchange)
            channel.confirm_delivery()
            channel.basic_publish(
                exchange=settings.exchange,
                routing_key=routing_key(state.site),
                body=state.to_json(),
                properties=pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent,
                    content_type="application/json",
                    timestamp=int(state.collected_at),
                    app_id="tpv-htcondor-producer",
                ),
                mandatory=True,
            )
        except pika.exceptions.UnroutableError:
            raise CollectorError(
                f"no queue is bound to exchange {settings.exchange!r} for htcondor.{state.site}: "
                "run the consumer once so it declares its queue"
            ) from None
        except pika.exceptions.NackError:
            raise CollectorError(
                "RabbitMQ refused the message (nack); nothing was published"
            ) from None
        except TRANSIENT_ERRORS as exc:
            raise CollectorError(
                f"publishing to RabbitMQ at {settings.redacted_url()} failed: {describe(exc)}"
            ) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="htcondor_producer",
        description="Publish this HTCondor pool's state to RabbitMQ (one message, then exit).",
    )
    add_config_argument(p)
    add_amqp_arguments(p)
    p.add_argument("--site", help="this Pulsar site's name")
    p.add_argument("--pool", help="HTCondor collector host[:port] (default: local config)")
    p.add_argument("--timeout", type=float, dest="timeout_s", help="seconds per network step")
    p.add_argument("--dry-run", action="store_true", help="print the message, do not publish")
    return p


def main(argv: list[str] | None = None, source: PoolSource | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = overrides_from(args)

    def run() -> int:
        settings = load_settings(args.config, overrides=overrides)
        if not settings.site:
            raise CollectorError("no site name: pass --site or set site in the config", EXIT_CONFIG)
        try:
            validate_site(settings.site)
        except MessageError as exc:
            raise CollectorError(f"invalid site name: {exc}", EXIT_CONFIG) from None
        state = collect_state(source or CondorPool(settings.pool), settings.site)
        if args.dry_run:
            sys.stdout.write(state.to_json().decode() + "\n")
            return EXIT_OK
        publish(settings, state)
        return EXIT_OK

    return run_cli("htcondor_producer", run)


if __name__ == "__main__":
    sys.exit(main())
