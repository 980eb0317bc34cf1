"""Helpers of the decision-quality benchmarks: the --seeds grammar, the Pareto frontier of the
ARBO figures and the asynchronous protocol of the reprioritization benchmark."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

import benchmarks.reprioritize as bench
from benchmarks.arbo_plots import pareto_mask
from benchmarks.reprioritize_problems import PROBLEMS
from benchmarks.seeds import parse_seeds


def test_seeds_as_lists_ranges_and_both():
    assert parse_seeds(["11", "12", "13"]) == [11, 12, 13]
    assert parse_seeds(["11-14"]) == [11, 12, 13, 14]
    assert parse_seeds(["1,2", "30-31", "2"]) == [1, 2, 30, 31]
    for bad in (["x"], ["5-3"], ["-1"], [""]):
        with pytest.raises(argparse.ArgumentTypeError, match="--seeds"):
            parse_seeds(bad)


def test_pareto_mask_keeps_only_undominated_points():
    time = np.array([10.0, 6.0, 5.0, 7.0, 5.0])
    cost = np.array([10.0, 12.0, 20.0, 15.0, 25.0])
    # 3 is beaten by 1 on both; 4 ties 2 on time and costs more
    assert pareto_mask(time, cost).tolist() == [True, True, True, False, False]


def test_reprioritization_sees_only_pending_tasks_while_workers_are_busy(monkeypatch):
    seen = []

    def spy(X_done, y_done, X_pending):
        seen.append((len(X_done), len(X_pending)))
        return np.arange(len(X_pending))[::-1]  # reverse: the order must be applied

    monkeypatch.setattr(bench, "quadratic_order", spy)
    figures = bench.run_seed(PROBLEMS["ackley"], 0, "quadratic", None, workers=12)
    # at every call 12 tasks are in flight: completed + pending + 12 = all points
    assert seen[0] == (bench.BATCH, bench.N_POINTS - bench.BATCH - 12)
    assert all(done + pending + 12 == bench.N_POINTS for done, pending in seen[:-1])
    assert len(seen) == (bench.N_POINTS - 1) // bench.BATCH
    assert 1 <= figures["best_position"] <= bench.N_POINTS
