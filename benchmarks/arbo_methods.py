"""The four ways the ARBO benchmark (``benchmarks.arbo``) picks ``s``: ours and three baselines.

Each method is a class built from the task's goal, with ``choose(x, load) -> s`` before a run and
``observe(s, seconds, x, load)`` after it; none sees the truth.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from benchmarks.arbo_tasks import CAND, MAX_S, has_slo
from broker.arbo.amdahl import Run
from broker.arbo.estimator import fit
from broker.arbo.objective import Goal, decide

DEFAULT_S = 8
WINDOW = 50
# The original ARBO runs s=1 again every so many runs to refresh its T1 reference (our reading of
# its periodic re-baseline; the period is a parameter there, 10 here).
REBASELINE_EVERY = 10


def is_rebaseline_run(t: int) -> bool:
    """Run t (0-based) is a periodic s=1 re-baseline run (never the first two: design runs)."""
    return t >= 2 and (t + 1) % REBASELINE_EVERY == 0


class Ours:
    """The broker's estimator and decision rule, exactly as the service runs them."""

    def __init__(self, goal: Goal):
        self.goal = goal
        self.runs: list[Run] = []

    def choose(self, x, load):
        model = fit(self.runs[-WINDOW:])
        return decide(model, self.goal, DEFAULT_S, MAX_S, x, load).s

    def observe(self, s, seconds, x, load):
        self.runs.append(Run(s, seconds, x, load))


class OursRebaseline(Ours):
    """Ours with the original ARBO's periodic s=1 re-baseline forced in: measures whether our
    model needs one (it fits T1 from runs at every s, with input size and load as features)."""

    def choose(self, x, load):
        return 1 if is_rebaseline_run(len(self.runs)) else super().choose(x, load)


class Fixed:
    """The author's default, every time."""

    def __init__(self, goal: Goal):
        pass

    def choose(self, x, load):
        return DEFAULT_S

    def observe(self, s, seconds, x, load):
        pass


class ArboOriginal:
    """Original ARBO rules: s=1 then s=5; per-run p smoothed 0.7/0.3; score (mean+std) sqrt(s);
    time-SLO filter on mean+std; s=1 when nothing fits; s=1 again every REBASELINE_EVERY runs
    to refresh the T1 reference (the latest three s=1 runs). Knows neither input size nor load."""

    def __init__(self, goal: Goal):
        self.goal = goal
        self.p: float | None = None
        self.t1_runs: list[float] = []
        self.history: list[tuple[int, float]] = []

    def choose(self, x, load):
        if not self.history or is_rebaseline_run(len(self.history)):
            return 1
        if len(self.history) == 1:
            return min(5, MAX_S)
        p = self.p if self.p is not None else 0.5
        frac = (1 - p) + p / CAND
        t1 = np.array([t / ((1 - p) + p / s) for s, t in self.history])
        mean, std = t1.mean() * frac, t1.std() * frac
        score = (mean + std) * np.sqrt(CAND)
        if self.goal.max_seconds is not None:
            fits = mean + std <= self.goal.max_seconds
            if not fits.any():
                return 1
            score = np.where(fits, score, np.inf)
        return int(CAND[np.argmin(score)])

    def observe(self, s, seconds, x, load):
        self.history.append((s, seconds))
        if s == 1:
            self.t1_runs.append(seconds)
            return
        if not self.t1_runs:
            return
        ref = float(np.mean(self.t1_runs[-3:]))
        p_run = float(np.clip((1 - seconds / ref) / (1 - 1 / s), 0.0, 1.0))
        self.p = p_run if self.p is None else 0.7 * self.p + 0.3 * p_run


class Ernest:
    """Ernest (NSDI'16): T = a + b x/s + c log s + d s by NNLS; three spread training runs,
    then the mean prediction chooses (SLO on the mean, no uncertainty)."""

    design = (2, 8, 32)

    def __init__(self, goal: Goal):
        self.goal = goal
        self.rows: list[list[float]] = []
        self.times: list[float] = []

    @staticmethod
    def features(s, x):
        s = np.asarray(s, dtype=float)
        return np.column_stack([np.ones_like(s), (x / 100.0) / s, np.log(s), s])

    def choose(self, x, load):
        if len(self.times) < len(self.design):
            return self.design[len(self.times)]
        theta, _ = nnls(np.array(self.rows), np.array(self.times))
        mean = self.features(CAND, x) @ theta
        value = CAND * self.goal.price * mean if self.goal.minimise_cost else mean
        use = np.zeros_like(mean)
        if self.goal.max_seconds is not None:
            use = np.maximum(use, mean / self.goal.max_seconds)
        if self.goal.max_cost is not None:
            use = np.maximum(use, CAND * self.goal.price * mean / self.goal.max_cost)
        if has_slo(self.goal):
            if (use <= 1).any():
                value = np.where(use <= 1, value, np.inf)
            else:
                return int(CAND[np.argmin(use)])
        return int(CAND[np.argmin(value)])

    def observe(self, s, seconds, x, load):
        self.rows.append(list(self.features([s], x)[0]))
        self.times.append(seconds)


METHODS = {
    "ours": Ours,
    "fixed": Fixed,
    "arbo_original": ArboOriginal,
    "ernest": Ernest,
    "ours_rebaseline": OursRebaseline,
}
BASELINES = ("fixed", "arbo_original", "ernest")
