"""The one settings object: one of each section, the network's destinations and object stores,
and where the config came from. The sections live in their own modules (see the package doc).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from broker.config.metrics import DecisionLogSettings, MetricsSettings
from broker.config.ranking import DestinationSettings, ObjectStoreSettings, RankingSettings
from broker.config.section import Section
from broker.config.service import AuthSettings, LimitsSettings, ServerSettings
from broker.config.state import ArboSettings, LedgerSettings


class Settings(Section):
    server: ServerSettings = ServerSettings()
    state_dir: Path = Path("/var/lib/tpv-broker")
    metrics: MetricsSettings = MetricsSettings()
    ranking: RankingSettings = RankingSettings()
    destinations: dict[str, DestinationSettings] = Field(default_factory=dict)
    objectstores: dict[str, ObjectStoreSettings] = Field(default_factory=dict)
    auth: AuthSettings = AuthSettings()
    arbo: ArboSettings = ArboSettings()
    limits: LimitsSettings = LimitsSettings()
    ledger: LedgerSettings = LedgerSettings()
    decision_log: DecisionLogSettings = DecisionLogSettings()
    source_file: Path | None = Field(default=None, exclude=True)

    def site_of(self, destination_id: str) -> str:
        """A TPV destination's HTCondor pool; the id itself unless the config says otherwise."""
        dest = self.destinations.get(destination_id)
        return dest.site if dest and dest.site else destination_id
