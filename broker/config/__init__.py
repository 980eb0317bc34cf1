"""The broker's one settings object.

Loaded from a YAML file (``--config`` or ``TPV_BROKER_CONFIG``; the embedded demo network when
neither is given), then overridden by ``TPV_BROKER_*`` environment variables, where a double
underscore descends one level: ``TPV_BROKER_METRICS__SOURCE=influxdb``,
``TPV_BROKER_METRICS__INFLUXDB__PASSWORD=...``, ``TPV_BROKER_AUTH__TOKENS=a,b``.
Relative paths in the file are relative to the file, so a config and its snapshot can move
together. No other module reads the environment.

There is one object, :class:`Settings`, and this package is where every part of the broker
imports it (and its sections) from. The modules split it by what a section is about, so that
one part can be read, and changed, without the rest:

- ``metrics``: the InfluxDB the broker reads (and writes its decision log to), or a snapshot;
- ``ranking``: the network (destinations, object stores) and the ranking model's constants;
- ``service``: the HTTP service (server, callers' tokens, request limits);
- ``state``: what outlives a request (the in-flight ledger, ARBO's run store);
- ``settings``: the ``Settings`` object that holds one of each (``section``: their base);
- ``loading``: YAML file + environment -> a validated ``Settings``, with errors naming the key.
"""

from broker.config.loading import (
    CONFIG_ENV,
    DATA_DIR,
    DEFAULT_CONFIG,
    ENV_PREFIX,
    ConfigError,
    deep_merge,
    load_settings,
    read_yaml_mapping,
)
from broker.config.metrics import DecisionLogSettings, InfluxSettings, MetricsSettings
from broker.config.ranking import (
    BandwidthSettings,
    DestinationSettings,
    ObjectStoreSettings,
    RankingSettings,
)
from broker.config.service import AuthSettings, LimitsSettings, ServerSettings
from broker.config.settings import Settings
from broker.config.state import ArboSettings, LedgerSettings

__all__ = [
    "CONFIG_ENV",
    "DATA_DIR",
    "DEFAULT_CONFIG",
    "ENV_PREFIX",
    "ArboSettings",
    "AuthSettings",
    "BandwidthSettings",
    "ConfigError",
    "DecisionLogSettings",
    "DestinationSettings",
    "InfluxSettings",
    "LedgerSettings",
    "LimitsSettings",
    "MetricsSettings",
    "ObjectStoreSettings",
    "RankingSettings",
    "ServerSettings",
    "Settings",
    "deep_merge",
    "load_settings",
    "read_yaml_mapping",
]
