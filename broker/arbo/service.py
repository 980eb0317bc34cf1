"""ARBO service: the store, the settings and a per-task model cache behind the three endpoints.

Fitting (least squares + a small GP) takes tens of milliseconds, so a fitted model is cached per
task and reused until a new run of that task arrives (keyed by the task's newest run id).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from pathlib import Path

from broker.arbo.amdahl import Run
from broker.arbo.estimator import TaskModel, fit
from broker.arbo.models import (
    FeedbackRequest,
    FeedbackResponse,
    ParallelismRequest,
    ParallelismResponse,
    TaskInfo,
)
from broker.arbo.objective import Goal, decide
from broker.arbo.store import ArboStore, default_url
from broker.config import ArboSettings

log = logging.getLogger(__name__)
CACHE_SIZE = 512


class ArboService:
    def __init__(self, settings: ArboSettings, state_dir: Path, store: ArboStore | None = None):
        self.settings = settings
        self.store = store or ArboStore(
            settings.database_url or default_url(state_dir), settings.retain_runs
        )
        # task -> ((newest succeeded id, succeeded runs), model, runs in its window)
        self._cache: OrderedDict[str, tuple[tuple, TaskModel | None, int]] = OrderedDict()
        # task -> why its last fit failed (cleared by a successful one)
        self.fit_errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def model(
        self, task: str, counts: tuple[int, int, int | None, float | None] | None = None
    ) -> tuple[TaskModel | None, int]:
        """The task's fitted model (None before any successful run) and its number of runs.
        Refitted only when its succeeded runs changed (a new one, or old ones pruned)."""
        _total, ok, newest, _at = counts or self.store.counts(task)
        key = (newest, ok)
        with self._lock:
            hit = self._cache.get(task)
            if hit is not None and hit[0] == key:
                self._cache.move_to_end(task)
                return hit[1], hit[2]
        records = self.store.recent(task, self.settings.window)
        runs = [Run(r.s, r.seconds, r.input_size, r.load) for r in records]
        try:
            model = fit(runs, self.settings.gp_min_runs)
        except Exception as exc:  # noqa: BLE001 - runs the edge could not refuse (older data)
            # A task whose runs cannot be fitted is decided as a cold start, with a note, never
            # a 500; the failure is cached like a model until the task's runs change.
            log.warning("arbo %s: fit of %d runs failed: %s", task, len(runs), exc)
            model = None
            with self._lock:
                self.fit_errors[task] = f"{type(exc).__name__}: {exc}"[:200]
        else:
            with self._lock:
                self.fit_errors.pop(task, None)
        with self._lock:
            self._cache[task] = (key, model, len(runs))
            self._cache.move_to_end(task)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return model, len(runs)

    def parallelism(self, req: ParallelismRequest, load: float | None) -> ParallelismResponse:
        slo = req.slo
        confidence = (slo.confidence if slo else None) or self.settings.confidence
        goal = Goal(
            objective=req.resolved_objective(),
            max_seconds=slo.max_seconds if slo else None,
            max_cost=slo.max_cost if slo else None,
            price=(slo.price_per_worker_second if slo else None) or 1.0,
            confidence=confidence,
        )
        max_s = req.max_s or max(self.settings.max_s, req.default_s)
        model, n = self.model(req.task)
        note = ""
        try:
            decision = decide(model, goal, req.default_s, max_s, req.input_size, load)
            interval = decision.predicted_interval
            numbers = [decision.predicted_seconds, decision.predicted_cost, *(interval or ())]
            if not all(x is None or math.isfinite(x) for x in numbers):
                raise FloatingPointError("the model predicted a non-finite duration or cost")
        except Exception as exc:  # noqa: BLE001 - a numerical surprise answers the cold start
            log.warning("arbo %s: deciding with the model failed: %s", req.task, exc)
            decision = decide(None, goal, req.default_s, max_s, req.input_size, load)
            note = f"the model of this task cannot be used ({type(exc).__name__}); "
        fit_error = self.fit_errors.get(req.task) if model is None else None
        if fit_error:
            note = f"the fit of this task's {n} runs failed ({fit_error}); "
        if note:
            decision.reason = f"{note}deciding as a cold start: {decision.reason}"
            n = 0
        log.info("arbo %s: s=%d (%s)", req.task, decision.s, decision.reason)
        return ParallelismResponse(
            s=decision.s,
            predicted_seconds=decision.predicted_seconds,
            predicted_interval=(
                None if decision.predicted_interval is None else list(decision.predicted_interval)
            ),
            predicted_cost=decision.predicted_cost,
            reason=decision.reason,
            objective=goal.objective,
            confidence=confidence,
            slo_met=decision.slo_met,
            exploring=decision.exploring,
            runs=n,
            load=load,
        )

    def feedback(self, req: FeedbackRequest, load: float | None) -> FeedbackResponse:
        run_id = self.store.add_run(
            req.task, req.s, req.seconds, req.input_size, load, req.succeeded, req.site
        )
        total, ok, _newest, _at = self.store.counts(req.task)
        return FeedbackResponse(task=req.task, run_id=run_id, runs=total, succeeded_runs=ok)

    def task_info(self, task: str) -> TaskInfo:
        counts = self.store.counts(task)
        total, ok, _newest, at = counts
        model, n = self.model(task, counts)
        return TaskInfo(
            task=task,
            runs=total,
            succeeded_runs=ok,
            window_runs=n,
            model=model.describe() if model else None,
            last_run_at=at,
        )
