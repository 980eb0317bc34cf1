"""`tpv-broker eval-success DIR`: our success model against the published reference, honestly.

Input: a directory of per-package CSVs (`spec`, one column per categorical feature, `outcome` =
`success`/`failure`), the format of the spack build-outcomes dataset. For every package with at
least two rows: stratified k-fold cross-validation (the same folds for both models, in the same
run), and for each model accuracy (threshold 0.5), Brier score and log loss over the package's
out-of-fold predictions; then the unweighted means over packages.

- Ours: `SuccessModel` (broker/success/model.py). Its intercept prior is centred on the mean
  success logit of the *other* packages in the directory (the level above a package in the
  hierarchy; a package's own labels never inform its prior).
- Reference: scikit-learn `CategoricalNB` (alpha=1) on ordinal-encoded features, one model per
  package, as published, but smoothed so it never answers exactly 0 or 1 (a one-class training
  fold answers the rule of succession; naive Bayes products are clipped to [1/(n+2),
  (n+1)/(n+2)]; broker/success/references.py says why). The encoder learns the package's value
  vocabulary from all its rows (labels are not used), so a value that appears only in a test
  fold has a category (`min_categories`) instead of crashing the reference.
- Logistic: a one-hot L2 logistic regression (scikit-learn defaults), the plain discriminative
  linear model; the bar is set against it.
- Folds: `min(folds, size of the larger class)`, since stratified splitting cannot make more
  folds than that; a package evaluated with fewer folds says so (`folds` per package). A package
  with one row (or none) cannot be cross-validated: listed as skipped, not in the means.
- Held-out packages: the model's design (hierarchy depth, scale grid, MAP vs moderated
  predictions, intercept prior) was chosen looking only at the packages whose name hashes even
  (`tuning_split`); the others are reported separately as `held_out`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from broker.progress import track
from broker.success.model import SuccessModel
from broker.success.references import OneHotLogistic, SmoothedNB

METRICS = ("accuracy", "brier", "log_loss")


class DatasetError(Exception):
    """The directory or a CSV cannot be used; the message names it."""


@dataclass
class Package:
    name: str
    features: list[str]
    rows: list[dict[str, str]]
    y: np.ndarray  # 1 = success


def tuning_split(name: str) -> bool:
    """True for the packages the design was tuned on (even SHA-1 of the name): a split fixed
    before looking at any result, independent of the data."""
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 2 == 0


def load_package(path: Path) -> Package:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if "outcome" not in header:
            raise DatasetError(f"{path}: no `outcome` column")
        features = [c for c in header if c not in ("spec", "outcome")]
        rows, y = [], []
        for i, rec in enumerate(reader, start=2):
            outcome = (rec.get("outcome") or "").strip()
            if outcome not in ("success", "failure"):
                raise DatasetError(f"{path}:{i}: outcome {outcome!r} is not success/failure")
            rows.append({f: (rec.get(f) or "").strip() for f in features})
            y.append(outcome == "success")
    return Package(path.stem, features, rows, np.array(y, dtype=int))


def load_dir(directory: Path) -> list[Package]:
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a directory")
    paths = sorted(directory.glob("*.csv"))
    if not paths:
        raise DatasetError(f"{directory} holds no *.csv")
    return [load_package(p) for p in paths]


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    p = np.clip(p, 0.0, 1.0)
    return {
        "accuracy": float(accuracy_score(y, p >= 0.5)),
        "brier": float(brier_score_loss(y, p, pos_label=1)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
    }


def fit_ours(pkg: Package, train: np.ndarray, prior_logit: float) -> SuccessModel:
    """Our model on the builds `train` of one package. Identical feature rows become one
    binomial row: the same likelihood, fewer rows to solve."""
    groups: dict[tuple, list[int]] = {}
    for i in train:
        key = tuple(pkg.rows[i][f] for f in pkg.features)
        groups.setdefault(key, [0, 0])[0 if pkg.y[i] else 1] += 1
    rows = [dict(zip(pkg.features, key, strict=True)) for key in groups]
    return SuccessModel().fit(
        rows,
        [c[0] for c in groups.values()],
        [c[1] for c in groups.values()],
        prior_logit=prior_logit,
    )


def population_logit(packages: list[Package], exclude: str) -> float:
    """Mean success logit of the other packages (each rate smoothed by half a build): the level
    above a package in the hierarchy, never informed by the package's own labels."""
    logits = [
        math.log((p.y.sum() + 0.5) / (len(p.y) - p.y.sum() + 0.5))
        for p in packages
        if p.name != exclude and len(p.y)
    ]
    return float(np.mean(logits)) if logits else 0.0


def evaluate_package(
    pkg: Package, folds: int, seed: int, prior_logit: float
) -> dict[str, object] | None:
    n = len(pkg.y)
    k = min(folds, int(np.bincount(pkg.y, minlength=2).max())) if n else 0
    if k < 2:
        return None
    ours, ref, lin = np.zeros(n), np.zeros(n), np.zeros(n)
    if pkg.features:
        enc = OrdinalEncoder(dtype=int)
        enc_x = enc.fit_transform(np.array([[r[f] for f in pkg.features] for r in pkg.rows]))
        n_cats = [len(c) for c in enc.categories_]
    else:
        enc_x, n_cats = np.zeros((n, 0), dtype=int), []
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has only 1 member": known, said
        warnings.simplefilter("ignore", UserWarning)
        splits = list(splitter.split(np.zeros(n), pkg.y))
    for train, test in splits:
        model = fit_ours(pkg, train, prior_logit)
        ours[test] = model.predict_proba([pkg.rows[i] for i in test])
        ref[test] = SmoothedNB(n_cats).fit(enc_x[train], pkg.y[train]).predict_proba(enc_x[test])
        lin[test] = OneHotLogistic().fit(enc_x[train], pkg.y[train]).predict_proba(enc_x[test])
    return {
        "rows": n,
        "successes": int(pkg.y.sum()),
        "features": len(pkg.features),
        "folds": k,
        "fewer_folds": k < folds,
        "tuning": tuning_split(pkg.name),
        "ours": _metrics(pkg.y, ours),
        "reference": _metrics(pkg.y, ref),
        "logistic": _metrics(pkg.y, lin),
    }


def _means(results: dict[str, dict], which: str) -> dict[str, float | None]:
    values = [r[which] for r in results.values()]
    return {
        f"mean_{m}": (round(float(np.mean([v[m] for v in values])), 4) if values else None)
        for m in METRICS
    }


def _summary(results: dict[str, dict]) -> dict[str, object]:
    return {
        "packages": len(results),
        "ours": _means(results, "ours"),
        "reference": _means(results, "reference"),
        "logistic": _means(results, "logistic"),
    }


def evaluate(directory: Path, folds: int = 10, seed: int = 0) -> dict[str, Any]:
    """Cross-validate every package of `directory`; the report the CLI prints as JSON."""
    if folds < 2:
        raise DatasetError("--folds must be at least 2")
    packages = load_dir(directory)
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    with threadpool_limits(1):
        for pkg in track(packages, len(packages), "eval-success", unit="package"):
            res = evaluate_package(pkg, folds, seed, population_logit(packages, pkg.name))
            if res is None:
                skipped[pkg.name] = f"{len(pkg.y)} row(s): cannot be cross-validated"
            else:
                results[pkg.name] = res
    report: dict[str, Any] = {
        "folds": folds,
        "seed": seed,
        **_summary(results),
        "tuning": _summary({k: v for k, v in results.items() if v["tuning"]}),
        "held_out": _summary({k: v for k, v in results.items() if not v["tuning"]}),
        "fewer_folds": {k: v["folds"] for k, v in results.items() if v["fewer_folds"]},
        "skipped": skipped,
    }
    published = _published(directory, results)
    if published:
        report["published_reference"] = published
    report["per_package"] = results
    return report


def _published(directory: Path, results: dict[str, dict]) -> dict[str, object] | None:
    """The dataset's published reference accuracy next to ours of the reference: a check that
    the reference here is the published one (SUMMARY.json, when the directory has it)."""
    path = directory / "SUMMARY.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    names = [
        k
        for k, v in summary.items()
        if isinstance(v, dict)
        and v.get("published_categoricalnb_10fold_mean_accuracy") is not None
        and k in results
    ]
    if not names:
        return None
    return {
        "packages": len(names),
        "published_mean_accuracy": round(
            float(
                np.mean([summary[k]["published_categoricalnb_10fold_mean_accuracy"] for k in names])
            ),
            4,
        ),
        "reference_here_mean_accuracy": round(
            float(np.mean([results[k]["reference"]["accuracy"] for k in names])), 4
        ),
        "ours_mean_accuracy": round(
            float(np.mean([results[k]["ours"]["accuracy"] for k in names])), 4
        ),
    }


def format_report(report: dict[str, Any]) -> str:
    """Human table, then the JSON report as the last line."""
    lines = [
        f"{'package':<16} {'rows':>5} {'folds':>5}   "
        f"{'acc ours/ref/lr':>19} {'brier ours/ref/lr':>19} {'logloss ours/ref/lr':>19}"
    ]
    for name, r in report["per_package"].items():
        o, f, g = r["ours"], r["reference"], r["logistic"]
        lines.append(
            f"{name:<16} {r['rows']:>5} {r['folds']:>5}{'*' if r['fewer_folds'] else ' '}  "
            f"{o['accuracy']:.3f}/{f['accuracy']:.3f}/{g['accuracy']:.3f} "
            f"{o['brier']:.3f}/{f['brier']:.3f}/{g['brier']:.3f} "
            f"{o['log_loss']:.3f}/{f['log_loss']:.3f}/{g['log_loss']:.3f}"
        )
    for name, why in report["skipped"].items():
        lines.append(f"{name:<16} skipped: {why}")
    if report["fewer_folds"]:
        lines.append("* fewer folds than asked: the package's larger class is smaller than that")
    for part in ("tuning", "held_out"):
        s = report[part]
        lines.append(
            f"{part}: {s['packages']} packages, ours {s['ours']}, ref {s['reference']}, "
            f"logistic {s['logistic']}"
        )
    lines.append(json.dumps(report, separators=(",", ":")))
    return "\n".join(lines)


def cmd_eval_success(args) -> int:
    """The CLI subcommand: prints the table and the JSON line; 2 on unusable input."""
    started = time.monotonic()
    try:
        report = evaluate(Path(args.dir), folds=args.folds, seed=args.seed)
    except (DatasetError, OSError) as exc:
        print(f"tpv-broker: {exc}", file=sys.stderr)
        return 2
    report["seconds"] = round(time.monotonic() - started, 1)
    print(format_report(report))
    return 0
