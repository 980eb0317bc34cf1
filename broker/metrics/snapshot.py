"""The embedded default source: a line-protocol file, a frozen moment of a Pulsar network.

Ages are measured against the newest point in the file, so a snapshot recorded months ago still
shows which sites were fresh and which had gone silent at that moment.
"""

from __future__ import annotations

from pathlib import Path

from broker.metrics.view import MetricsView, SourceError
from metric_contract.lineprotocol import LineProtocolError, parse_text


class SnapshotSource:
    name = "snapshot"

    def __init__(self, path: Path):
        self.path = Path(path)

    def fetch(self) -> MetricsView:
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise SourceError(f"cannot read snapshot {self.path}: {exc.strerror}") from exc
        try:
            points = list(parse_text(text))
        except LineProtocolError as exc:
            raise SourceError(f"snapshot {self.path}: {exc}") from exc
        return MetricsView.from_points(points, source=f"snapshot:{self.path.name}", frozen=True)
