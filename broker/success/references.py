"""The models ours is compared with: smoothed CategoricalNB (the published reference, made
honest) and a one-hot logistic regression (what any discriminative linear model gets).

Both are fitted per package on the same rows as ours; both answer probabilities strictly inside
(0, 1), so a log loss measures the model, not a division by zero:

- A training set with one class cannot be fitted by either (scikit-learn needs two classes).
  Both then answer the rule of succession, (successes + 1) / (n + 2): the mean of the Beta(1, 1)
  posterior of the rate, the least a model may claim after n builds that all agreed.
- CategoricalNB keeps the published alpha=1 (Laplace smoothing of every feature's counts) and
  gets `min_categories` from the package's whole vocabulary, so a value first seen at test time
  has a (smoothed, uninformative) category. Naive Bayes multiplies correlated features and can
  still reach 1e-12; its answer is clipped to [1/(n+2), (n+1)/(n+2)], the same bound: n
  training builds cannot support a rate more extreme than n agreeing builds would.
- Logistic regression: scikit-learn's defaults (L2, C=1, lbfgs) on a one-hot encoding that
  ignores unseen values. A Gaussian prior on every weight already keeps it inside (0, 1); no
  clip, no tuning (it is the baseline, and a tuned baseline would be tuned on the test data).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import CategoricalNB
from sklearn.preprocessing import OneHotEncoder


def rule_of_succession(y: np.ndarray) -> float:
    """(successes + 1) / (n + 2): the rate after n builds under a uniform prior."""
    return float((y.sum() + 1.0) / (len(y) + 2.0))


class SmoothedNB:
    """CategoricalNB (alpha=1) on ordinal codes, never exactly 0 or 1 (module doc)."""

    def __init__(self, n_categories: Sequence[int], alpha: float = 1.0):
        self.n_categories = list(n_categories)
        self.alpha = alpha
        self.nb: CategoricalNB | None = None
        self.constant = 0.5
        self.bound = 0.0

    def fit(self, x: np.ndarray, y: np.ndarray) -> SmoothedNB:
        self.constant = rule_of_succession(y)
        self.bound = 1.0 / (len(y) + 2.0)
        self.nb = None
        if x.shape[1] and len(np.unique(y)) == 2:
            self.nb = CategoricalNB(alpha=self.alpha, min_categories=self.n_categories)
            self.nb.fit(x, y)
        return self

    def log_odds_tables(self) -> tuple[float, list[np.ndarray]] | None:
        """(prior log odds, per feature the log likelihood ratio of each code), for scoring
        many rows by table lookup; None when the model is a constant."""
        if self.nb is None:
            return None
        one = list(self.nb.classes_).index(1)
        zero = 1 - one
        prior = float(self.nb.class_log_prior_[one] - self.nb.class_log_prior_[zero])
        tables = [flp[one] - flp[zero] for flp in self.nb.feature_log_prob_]
        return prior, tables

    def clip(self, p: np.ndarray) -> np.ndarray:
        return np.clip(p, self.bound, 1.0 - self.bound)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.nb is None:
            return np.full(len(x), self.constant)
        p = self.nb.predict_proba(x)[:, list(self.nb.classes_).index(1)]
        return self.clip(p)


class OneHotLogistic:
    """L2 logistic regression (scikit-learn defaults) on one-hot features (module doc)."""

    def __init__(self) -> None:
        self.encoder = OneHotEncoder(handle_unknown="ignore")
        self.lr: LogisticRegression | None = None
        self.constant = 0.5

    def fit(self, x: np.ndarray, y: np.ndarray) -> OneHotLogistic:
        self.constant = rule_of_succession(y)
        self.lr = None
        if x.shape[1] and len(np.unique(y)) == 2:
            self.lr = LogisticRegression(max_iter=1000)
            self.lr.fit(self.encoder.fit_transform(x), y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.lr is None:
            return np.full(len(x), self.constant)
        p = self.lr.predict_proba(self.encoder.transform(x))
        return p[:, list(self.lr.classes_).index(1)]
