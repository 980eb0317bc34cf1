"""The ranking's answers stay byte-identical across restructurings.

`tests/fixtures/ranking/differential.json` holds, for every randomized case of
`tests.support.ranking_cases`, a digest of its inputs and a digest of the answers, frozen from
the code as it was before the ranking was split by lifetime. A change that moves any answer
(order, a term, an explanation's text or rounding) fails here; one that is meant to move them
regenerates the fixture (`python -m tests.unit.test_ranking_differential`) and says why in
its commit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from broker.config import Settings
from broker.metrics.view import MetricsView
from broker.ranking.context import RankContext
from broker.ranking.derived import derive
from broker.ranking.models import RankRequest
from broker.ranking.rank import rank
from broker.ranking.routed import RoutedLedger
from metric_contract.lineprotocol import parse_lines
from tests.support.ranking_cases import cases

FIXTURE = Path(__file__).parents[1] / "fixtures" / "ranking" / "differential.json"
SEED, COUNT = 20261201, 800


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def answers(case: dict) -> list[str]:
    """The wire answer to each of the case's requests, ranked in order on one view."""
    settings = Settings.model_validate(case["settings"])
    view = MetricsView.from_points(parse_lines(case["lines"]), source="test", frozen=True)
    derived = derive(view, settings)
    ranking = settings.ranking
    ledger = (
        RoutedLedger(ranking.routed_grace_s, settings.metrics.staleness_s)
        if case["ledger"]
        else None
    )
    out = []
    for r in case["requests"]:
        request = RankRequest.model_validate(r["body"])
        ctx = RankContext(settings, derived, None, ledger)
        out.append(rank(ctx, request.to_query(), r["explain"]).to_json())
    return out


def digests() -> dict:
    all_cases = cases(SEED, COUNT)
    return {
        "seed": SEED,
        "count": COUNT,
        "requests": sum(len(c["requests"]) for c in all_cases),
        "inputs": [_digest(c) for c in all_cases],
        "answers": [_digest(answers(c)) for c in all_cases],
    }


def test_answers_match_the_frozen_fixture():
    frozen = json.loads(FIXTURE.read_text())
    now = digests()
    assert now["inputs"] == frozen["inputs"], "the case generator changed: regenerate on purpose"
    moved = [
        i for i, (a, b) in enumerate(zip(now["answers"], frozen["answers"], strict=True)) if a != b
    ]
    assert not moved, f"{len(moved)} cases answer differently, first: case {moved[0]}"
    assert now["requests"] >= 2000


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(digests(), indent=0) + "\n")
    print(f"wrote {FIXTURE}")
