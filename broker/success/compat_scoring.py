"""The compatibility experiment's fitted models as lookup tables: logit = bias + one table
entry per feature. Both models (ours and the CategoricalNB reference) are additive in the
logit, so scoring a million job-cluster pairs is an index and a sum instead of a model call
per pair; `Experiment` builds one `Scorer` per package and fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from broker.success.references import SmoothedNB


@dataclass
class Scorer:
    """One fold's model of one package as lookup tables: logit = bias + sum of table[code]."""

    bias: float
    tables: list[np.ndarray]  # per package feature: effect per value code (last code: absent)
    constant: float | None = None  # a model that ignores the features
    low: float = 0.0  # clip (the reference's n-build bound)

    def score(self, codes: np.ndarray) -> np.ndarray:
        if self.constant is not None:
            return np.full(len(codes), self.constant)
        eta = np.full(len(codes), self.bias)
        for j, table in enumerate(self.tables):
            eta += table[codes[:, j]]
        return np.clip(expit(eta), self.low, 1.0 - self.low)


def reference_scorer(nb: SmoothedNB) -> Scorer:
    """The reference's log-odds tables (a constant when it ignores the features)."""
    tables = nb.log_odds_tables()
    if tables is None:
        return Scorer(0.0, [], constant=nb.constant)
    prior, per_feature = tables
    return Scorer(prior, per_feature, low=nb.bound)
