"""Order pending tasks by a Gaussian-process surrogate of the completed ones (EMEWS style).

A model-exploration workflow evaluates a fixed set of candidate points through a task queue.
After each batch of completions the surrogate is refitted and the still-pending tasks are
reordered so that the most promising run next. The decision is pure: the same request always
gives the same answer (the GP is seeded), and nothing is stored between calls, so any number of
workflows can share one broker.

Acquisitions (all "higher runs first"):

- ``ei``: expected improvement over the best result so far. Default: it trades the predicted
  value against the uncertainty without a tuning constant.
- ``ucb``: the optimistic bound, mean -/+ ``UCB_KAPPA`` std (minus when minimising).
- ``mean``: the predicted mean alone (pure exploitation).

Ties (e.g. expected improvement that underflows to zero far from the best point) are broken by
the predicted mean, then by the order the tasks were sent in, so the answer is always total
and stable.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from broker.reprioritize.gp import GaussianProcess
from broker.reprioritize.models import (
    PredictionOut,
    ReprioritizeExplanation,
    ReprioritizeRequest,
    ReprioritizeResponse,
)
from broker.reprioritize.posterior import Posterior, expected_improvement

log = logging.getLogger(__name__)

UCB_KAPPA = 2.0


def _scores(prediction: Posterior, best: float, minimize: bool, acquisition: str) -> np.ndarray:
    sign = 1.0 if minimize else -1.0
    if acquisition == "ei":
        return expected_improvement(prediction, best, minimize=minimize)
    if acquisition == "ucb":
        return -sign * (prediction.mean - sign * UCB_KAPPA * prediction.std)
    if acquisition == "mean":
        return -sign * prediction.mean
    raise ValueError(f"unknown acquisition {acquisition!r}")


class NotModelled(ValueError):
    """The completed results cannot be modelled (the surrogate's numbers are not finite)."""


def reprioritize(request: ReprioritizeRequest, *, explain: bool = False) -> ReprioritizeResponse:
    """Fit the surrogate on ``request.completed`` and order ``request.pending``.

    Priorities follow EQSQL's convention (the queue pops the highest ``eq_priority`` first):
    the first task in ``order`` gets ``len(pending)``, the last gets 1, so every reprioritized
    task still runs before a newly submitted one at EQSQL's default priority 0.
    """
    started = time.perf_counter()
    minimize = request.goal == "minimize"
    X = np.array([t.x for t in request.completed], dtype=float)
    y = np.array([t.y for t in request.completed], dtype=float)
    P = np.array([t.x for t in request.pending], dtype=float)

    gp = GaussianProcess().fit(X, y, domain=P)
    prediction = gp.predict(P)
    best = float(y.min() if minimize else y.max())
    scores = _scores(prediction, best, minimize, request.acquisition)
    if not (np.isfinite(prediction.mean).all() and np.isfinite(prediction.std).all()):
        # the answer's schema holds numbers only; bounded inputs should never get here
        raise NotModelled("the surrogate predicted non-finite values: rescale x or y")
    # an undefined score ranks last; every score in the answer is a finite number
    big = np.finfo(float).max
    scores = np.nan_to_num(scores, nan=-big, posinf=big, neginf=-big)

    # np.lexsort sorts by the last key first: score (descending), then mean (best first),
    # then the position in the request.
    mean_key = prediction.mean if minimize else -prediction.mean
    ranking = np.lexsort((np.arange(len(P)), mean_key, -scores))

    n = len(ranking)
    order = [request.pending[i].id for i in ranking]
    priorities = {str(request.pending[i].id): n - rank for rank, i in enumerate(ranking)}
    predictions = {
        str(task.id): PredictionOut(mean=float(m), std=float(s))
        for task, m, s in zip(request.pending, prediction.mean, prediction.std, strict=True)
    }
    seconds = time.perf_counter() - started
    log.info(
        "reprioritized %d pending tasks from %d completed (%s, %s) in %.3f s; first: %s",
        n,
        len(y),
        request.goal,
        request.acquisition,
        seconds,
        order[:3],
    )
    explanation = None
    if explain:
        explanation = ReprioritizeExplanation(
            kernel=gp.kernel_,
            hyperparameters_fitted=gp.optimized,
            n_completed=len(y),
            n_train=gp.n_train,
            best_y=best,
            goal=request.goal,
            acquisition=request.acquisition,
            scores={str(t.id): float(s) for t, s in zip(request.pending, scores, strict=True)},
            seconds=seconds,
        )
    return ReprioritizeResponse(
        order=order, priorities=priorities, predictions=predictions, explanation=explanation
    )
