"""The broker as an importable ASGI app, for uvicorn and other ASGI servers:

    uvicorn broker.asgi:app --reload

Configured like `tpv-broker serve`: the file named by ``TPV_BROKER_CONFIG`` (the embedded demo
network without it) plus ``TPV_BROKER_*`` overrides. `tpv-broker serve` with
``server.workers`` > 1 starts its workers from here, one app per process.
"""

from __future__ import annotations

from broker.app import configure_logging, create_app
from broker.config import ConfigError, load_settings

try:
    settings = load_settings()
except ConfigError as exc:  # a clear message and a non-zero exit, not an import traceback
    raise SystemExit(f"tpv-broker: {exc}") from None

configure_logging(settings)
app = create_app(settings)
