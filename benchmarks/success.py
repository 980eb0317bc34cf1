"""`python -m benchmarks.success`: the success model against smoothed CategoricalNB and a one-hot
logistic regression on the shared dataset.

A thin wrapper around `tpv-broker eval-success` (broker/success/eval.py): 10-fold stratified
cross-validation per package, both models on the same folds in the same run. The dataset is
looked up next to the repository (`../shared/datasets/spack-build-outcomes`) unless
`SPACK_OUTCOMES_DIR` names another directory; it is never copied into the repository. Prints
the per-package table and, on the last line, the JSON report with the Bar's verdict added.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from broker.success.eval import DatasetError, evaluate, format_report

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "spack-build-outcomes"


def bar(summary: dict) -> dict[str, bool]:
    """The targets on one summary: accuracy at least the (smoothed) reference's and the logistic
    regression's; Brier and log loss at most 0.95x the logistic regression's (a clear margin
    over the plain discriminative linear model, not only over naive Bayes)."""
    o, r, g = summary["ours"], summary["reference"], summary["logistic"]
    return {
        "accuracy_at_least_reference": o["mean_accuracy"] >= r["mean_accuracy"],
        "accuracy_at_least_logistic": o["mean_accuracy"] >= g["mean_accuracy"],
        "brier_at_most_0.95_logistic": o["mean_brier"] <= 0.95 * g["mean_brier"],
        "log_loss_at_most_0.95_logistic": o["mean_log_loss"] <= 0.95 * g["mean_log_loss"],
    }


def main() -> int:
    directory = Path(os.environ.get("SPACK_OUTCOMES_DIR", DEFAULT_DIR))
    folds = int(os.environ.get("BENCH_FOLDS", "10"))
    seed = int(os.environ.get("BENCH_SEED", "0"))
    started = time.monotonic()
    try:
        report = evaluate(directory, folds=folds, seed=seed)
    except DatasetError as exc:
        print(f"benchmarks.success: {exc}", file=sys.stderr)
        return 2
    report["seconds"] = round(time.monotonic() - started, 1)
    report["bar"] = {"all": bar(report), "held_out": bar(report["held_out"])}
    print(format_report(report).rsplit("\n", 1)[0])
    print(json.dumps(report, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
