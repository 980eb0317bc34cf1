"""ARBO service: the store, the settings and a per-task model cache behind the three endpoints.

Fitting (least squares + a small GP) takes tens of milliseconds, so a fitted model is cached per
task and reused until a new run of that task arrives (keyed by the task's newest run id).
"""

from __future__ import annotations

import logging
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
        model = fit(runs, self.settings.gp_min_runs)
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
        decision = decide(model, goal, req.default_s, max_s, req.input_size, load)
        log.info("arbo %s: s=%d (%s)", req.task, decision.s, decision.reason)
        return ParallelismResponse(
            s=decision.s,
            predicted_seconds=decision.predicted_seconds,
            predicted_interval=decision.predicted_interval,
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
