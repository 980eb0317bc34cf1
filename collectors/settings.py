"""Settings shared by the collectors: a TOML file, then `TPV_COLLECTOR_*` environment
variables, then command-line flags (each overrides the one before).

Why three layers: the AMQP URL carries a password, so production puts it in a root-only file or
in the environment (Telegraf's exec plugin has `environment = [...]`), never on a command line
where `ps` shows it; tests and one-off runs use flags. TOML because Python 3.11 reads it without
a dependency (a Pulsar node gets only pika and the HTCondor bindings). This is the only module
in `collectors` that reads the environment.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from collectors.errors import EXIT_CONFIG, CollectorError

ENV_PREFIX = "TPV_COLLECTOR_"
CONFIG_ENV = "TPV_COLLECTOR_CONFIG"
DEFAULT_EXCHANGE = "tpv_broker.metrics"
DEFAULT_QUEUE = "tpv_broker.htcondor"


@dataclass(frozen=True)
class CollectorSettings:
    """What the collector programs are told: AMQP connection and topology, the producer's
    site and pool, the consumer's budget, the job-outcomes query, the attempt-outcomes join.
    (The broker's own settings are `broker.config.Settings`; the collectors never read those.)"""

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    amqp_ca_file: str | None = None  # CA bundle for amqps:// (system CAs when unset)
    exchange: str = DEFAULT_EXCHANGE
    queue: str = DEFAULT_QUEUE  # consumer: its durable queue; `<queue>.dead` holds rejects
    binding_key: str = "htcondor.*"
    site: str | None = None  # producer: this Pulsar site's name (routing key htcondor.<site>)
    pool: str | None = None  # producer: HTCondor collector host[:port]; None = local config
    timeout_s: float = 10.0  # producer: budget for each network step
    max_messages: int = 100_000  # consumer: per exec run
    max_seconds: float = 4.0  # consumer: below Telegraf's default exec timeout (5 s)
    postgres_dsn: str = "dbname=galaxy"  # job outcomes: libpq conninfo or URI
    window_days: int = 30  # job outcomes: look-back window
    # attempt outcomes: where the broker's decision log is, and how far back to join it
    influx_url: str = "http://127.0.0.1:8086"
    influx_database: str = "galaxy"
    influx_username: str | None = None
    influx_password: str | None = None  # file or environment only (ps shows command lines)
    decision_window_hours: float = 168.0

    def redacted_url(self) -> str:
        """The AMQP URL without its password, for error messages."""
        return redact(self.amqp_url)


def redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


# The numeric settings and their type, read off the dataclass (annotations are strings here).
_NUMBERS = {
    f.name: {"int": int, "float": float}[f.type]
    for f in fields(CollectorSettings)
    if f.type in ("int", "float")
}


def _coerce(key: str, value: Any, origin: str) -> Any:
    kind = _NUMBERS.get(key)
    if kind is not None:
        try:
            if isinstance(value, bool):
                raise ValueError
            out = kind(value)
            if not out > 0:  # also refuses NaN
                raise ValueError
            return out
        except (TypeError, ValueError):
            message = f"{origin}: {key} must be a positive number"
            raise CollectorError(message, EXIT_CONFIG) from None
    if value is not None and not isinstance(value, str):
        raise CollectorError(f"{origin}: {key} must be a string", EXIT_CONFIG)
    return value


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> CollectorSettings:
    """File (``path`` or $TPV_COLLECTOR_CONFIG, optional), then env, then non-None overrides."""
    environ = os.environ if environ is None else environ
    known = {f.name for f in fields(CollectorSettings)}
    values: dict[str, Any] = {}
    chosen = path or environ.get(CONFIG_ENV)
    if chosen:
        try:
            raw = tomllib.loads(Path(chosen).read_text())
        except OSError as exc:
            raise CollectorError(
                f"cannot read config file {chosen}: {exc.strerror}", EXIT_CONFIG
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise CollectorError(
                f"config file {chosen} is not valid TOML: {exc}", EXIT_CONFIG
            ) from None
        for key, value in raw.items():
            if key not in known:
                raise CollectorError(f"config file {chosen}: unknown key {key!r}", EXIT_CONFIG)
            values[key] = _coerce(key, value, f"config file {chosen}")
    for key in known:
        env_key = ENV_PREFIX + key.upper()
        if env_key in environ and environ[env_key] != "":
            values[key] = _coerce(key, environ[env_key], f"environment {env_key}")
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value, f"option --{key.replace('_', '-')}")
    return replace(CollectorSettings(), **values)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"TOML settings file (default: ${CONFIG_ENV})")


def add_amqp_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both AMQP ends take, besides --config."""
    parser.add_argument("--amqp-url", help="amqp[s]://user:password@host:port/vhost")
    parser.add_argument("--amqp-ca-file", help="CA bundle for amqps://")
    parser.add_argument("--exchange", help=f"topic exchange (default {DEFAULT_EXCHANGE})")


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options that are settings (their `dest` is the settings key)."""
    return {
        f.name: getattr(args, f.name) for f in fields(CollectorSettings) if hasattr(args, f.name)
    }
