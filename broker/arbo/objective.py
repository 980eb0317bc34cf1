"""Choosing ``s``: the author's objective, their SLO at the asked confidence, and exploration.

The objective is optimised on expected values (an average over many runs is what a cost budget
or a throughput goal sees); an SLO is a per-run promise, so it is checked on the predictive
quantile at the requested confidence, with the parameter uncertainty included: early on, when
the model knows little, only clearly safe ``s`` values pass. When none passes we say so and
return the ``s`` whose quantile comes closest to the limits (among near-ties, the best for the
objective), never a silent ``s=1``.

Cold start: the author's default first (it is what they would have run anyway), except for plain
``cheapest``, where one worker is the cheapest under every Amdahl law with a start-up overhead.
Then one contrasting ``s`` at least a factor 2 away in the direction the objective points (fewer
workers for cost, more for speed), or the other way when the run already seen predicts the SLO
broken that way: two well-separated ``s`` values identify the parallel fraction, after which
the model decides. Plain ``cheapest`` needs no contrast (fewer workers are cheaper whatever p).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from broker.arbo.estimator import TaskModel

OBJECTIVES = ("fastest", "cheapest", "cheapest_within_time", "fastest_within_cost")
MAX_CANDIDATES = 256
# When no s meets the SLO: s values within this relative excess of the closest are as good.
BEST_EFFORT_SLACK = 0.02
# The second distinct s is at least this factor away from the first, so two runs identify the
# parallel fraction. 4 was measured too: lower regret on cheapest_within_time, higher on
# fastest_within_cost, the same overall (benchmark seed 1), so the smaller step stays.
CONTRAST = 2


@dataclass(frozen=True)
class Goal:
    """What the author asked for, normalised (objective names resolved, price defaulted)."""

    objective: str = "fastest"
    max_seconds: float | None = None
    max_cost: float | None = None
    price: float = 1.0
    confidence: float = 0.9

    @property
    def minimise_cost(self) -> bool:
        return self.objective in ("cheapest", "cheapest_within_time")


@dataclass
class Decision:
    s: int
    predicted_seconds: float | None
    predicted_interval: tuple[float, float] | None
    predicted_cost: float | None
    reason: str
    slo_met: bool | None
    exploring: bool


def candidates(max_s: int, default_s: int) -> np.ndarray:
    """Every integer up to MAX_CANDIDATES; a geometric grid beyond (plus the default)."""
    if max_s <= MAX_CANDIDATES:
        return np.arange(1, max_s + 1)
    grid = np.unique(np.round(np.geomspace(1, max_s, MAX_CANDIDATES)).astype(int))
    return np.unique(np.append(grid, default_s))


def _constraint_excess(goal: Goal, s: np.ndarray, q_seconds: np.ndarray) -> np.ndarray:
    """Worst relative excess over the SLO limits at the confidence quantile (<= 1 means met)."""
    excess = np.zeros_like(q_seconds)
    if goal.max_seconds is not None:
        excess = np.maximum(excess, q_seconds / goal.max_seconds)
    if goal.max_cost is not None:
        excess = np.maximum(excess, s * goal.price * q_seconds / goal.max_cost)
    return excess


def _has_slo(goal: Goal) -> bool:
    return goal.max_seconds is not None or goal.max_cost is not None


def _best(model: TaskModel, goal: Goal, cand: np.ndarray, x: float | None, load: float | None):
    pred = model.predict(cand, x, load)
    mean = pred.mean_seconds()
    value = cand * goal.price * mean if goal.minimise_cost else mean
    if not _has_slo(goal):
        return int(np.argmin(value)), pred, None
    excess = _constraint_excess(goal, cand, pred.quantile(goal.confidence))
    feasible = excess <= 1.0
    if feasible.any():
        idx = int(np.argmin(np.where(feasible, value, np.inf)))
        return idx, pred, True
    # Best effort: the s whose quantile comes closest to the limits; among those (nearly) as
    # close, the best for the objective, so a flat tail of the curve does not buy 64 workers
    # to get 0.5 % closer.
    near = excess <= excess.min() * (1 + BEST_EFFORT_SLACK)
    return int(np.argmin(np.where(near, value, np.inf))), pred, False


def decide(
    model: TaskModel | None,
    goal: Goal,
    default_s: int,
    max_s: int,
    input_size: float | None = None,
    load: float | None = None,
) -> Decision:
    """Pick ``s`` in 1..max_s for the goal; ``model`` None means no successful run yet."""
    default_s = min(max(default_s, 1), max_s)
    if model is None:
        if goal.objective == "cheapest":
            # s x T(s) = c s + T1 ((1 - p) s + p) grows with s for every Amdahl law with a
            # start-up overhead: one worker is the cheapest whatever the task, no need to look.
            s = 1
            why = (
                "s=1, because the cost s x duration never falls with more workers under "
                "Amdahl's law"
            )
        else:
            s, why = default_s, f"using the default s={default_s} and learning from its feedback"
        return Decision(
            s=s,
            predicted_seconds=None,
            predicted_interval=None,
            predicted_cost=None,
            reason=f"cold start: no successful run recorded yet, so no prediction; {why}",
            slo_met=None,
            exploring=True,
        )
    cand = candidates(max_s, default_s)
    idx, pred, slo_ok = _best(model, goal, cand, input_size, load)
    s = int(cand[idx])
    exploring = False
    note = ""
    if len(model.distinct_s) == 1 and goal.objective != "cheapest":
        # One s seen: p is prior only. Move at least a factor 2 away, towards where the objective
        # points (fewer workers for cost, more for speed) unless the run seen already broke the
        # SLO that way. (For plain "cheapest" fewer workers are cheaper whatever p is.)
        s0 = model.distinct_s[0]
        down = goal.minimise_cost
        if _has_slo(goal):
            at_s0 = model.predict(np.array([s0], dtype=float), input_size, load)
            median_excess = _constraint_excess(goal, np.array([s0]), at_s0.quantile(0.5))[0]
            if median_excess > 1.0:
                down = not down
        if (down and s0 == 1) or (not down and s0 == max_s):
            down = not down
        far = (s <= s0 / CONTRAST) if down else (s >= CONTRAST * s0)
        if not far:
            s = max(s0 // CONTRAST, 1) if down else min(CONTRAST * s0, max_s)
        idx = int(np.searchsorted(cand, s))
        if idx >= len(cand) or cand[idx] != s:
            cand = np.append(cand, s)
            pred = model.predict(cand, input_size, load)
            idx = len(cand) - 1
        exploring = True
        note = (
            f"exploring: only s={s0} observed so far; s={s} (a factor "
            f"{max(s, s0) / min(s, s0):.3g} away) identifies the parallel fraction. "
        )
        if _has_slo(goal):
            q = _constraint_excess(
                goal, cand[idx : idx + 1], pred.quantile(goal.confidence)[idx : idx + 1]
            )
            slo_ok = bool(q[0] <= 1.0)
    mean = float(pred.mean_seconds()[idx])
    alpha = (1 - goal.confidence) / 2
    lo, hi = float(pred.quantile(alpha)[idx]), float(pred.quantile(1 - alpha)[idx])
    cost = s * goal.price * mean
    reason = note + _explain(goal, s, mean, slo_ok, pred, idx, model)
    return Decision(
        s=s,
        predicted_seconds=mean,
        predicted_interval=(lo, hi),
        predicted_cost=cost,
        reason=reason,
        slo_met=slo_ok,
        exploring=exploring,
    )


def _explain(goal: Goal, s: int, mean: float, slo_ok, pred, idx: int, model: TaskModel) -> str:
    what = {
        "fastest": "lowest expected duration",
        "cheapest": "lowest expected cost",
        "cheapest_within_time": "lowest expected cost within the time limit",
        "fastest_within_cost": "lowest expected duration within the cost limit",
    }[goal.objective]
    base = (
        f"s={s}: {what} (expected {mean:.4g} s) from {model.n} runs, "
        f"p={model.amdahl.p:.3f}{' + GP residual' if model.gp is not None else ''}"
    )
    if slo_ok is None:
        return base
    limits = []
    if goal.max_seconds is not None:
        p_time = float(pred.prob_below(goal.max_seconds)[idx])
        limits.append(f"P(duration <= {goal.max_seconds:g} s) = {p_time:.3f}")
    if goal.max_cost is not None:
        p_cost = float(pred.prob_below(goal.max_cost / (s * goal.price))[idx])
        limits.append(f"P(cost <= {goal.max_cost:g}) = {p_cost:.3f}")
    if slo_ok:
        return f"{base}; SLO met with confidence {goal.confidence:g}: " + ", ".join(limits)
    return (
        f"no s in the allowed range meets the SLO with confidence {goal.confidence:g}; best effort "
        f"s={s}, the most likely to meet it: " + ", ".join(limits)
    )
