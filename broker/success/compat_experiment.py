"""`tpv-broker compat-experiment DIR`: does compatibility metadata steer builds to clusters
where they succeed? The experiment of the compatibility-aware (rainbow) scheduling work,
reproduced on per-package outcome CSVs (the format `eval-success` reads).

1. Subsystems. Every feature column is a property of a build environment: `<dep>-version`,
   `<dep>-compiler-version` (and `_version`) belong to the subsystem `<dep>`. The features of
   all packages are pooled: `cmake-version` is one feature wherever it appears.
2. Clusters. `--clusters` environments, each with a value of every feature drawn uniformly from
   the values that feature takes in the data (`absent` excluded: every cluster provides every
   subsystem, at some version).
3. Jobs. Every build that succeeded is a job whose jobspec asks for the environment it is
   known to build in: the values of its features, except `absent` (the build does not use that
   dependency) and the features its package's CSV has no column for (constant in the data, so
   unknown): neither constrains it. A failed build is evidence for the models, not a request:
   nobody asks for the environment a build failed in, and matching it there would score the
   metadata for steering a build back to its failure.
4. Levels. The subsystems are added one at a time in a random order; at level k the first k
   are in the jobspecs. A cluster is compatible with a job when it is equal on every required
   feature of every included subsystem (rainbow's `equals` match); among the compatible
   clusters one is picked at random (rainbow's default `random` selection); with none the
   job is unschedulable. Level 0 has no metadata: every cluster is compatible. The clusters
   are fixed, so the compatible set only shrinks: unschedulable never decreases with the level.
   Each job draws one random priority per cluster, once, and takes the compatible cluster of
   highest priority: at every level that is a uniform pick among the compatible clusters (as
   rainbow's), and across levels a job moves only when its cluster stops being compatible
   (common random numbers: the curve shows the metadata's effect, not fresh dice per level).
5. Scores. A build on cluster c uses c's value of each feature it needs (its own `absent`
   stays `absent`): at included subsystems that is the job's own value, elsewhere whatever c
   has. Its package's model gives P(success | that environment). Per level: mean P over the
   assigned jobs (per package, then over packages: one application, one vote), sum of P /
   number of jobs (an unschedulable job scores 0), unschedulable fraction; for ours
   (broker/success/model.py) and the smoothed CategoricalNB reference.

Three artefacts the design rules out:
- In-sample scores. At the last level a job's environment is its own feature row; a model
  fitted on that row would score its memory of the outcome (and rise with any features, even
  noise). Every job is scored by a model of its package fitted on the *other* folds
  (cross-fitting), never on itself: the rise is what the model learnt from other builds.
- Survivors. Jobs that become unschedulable leave the mean; if hard jobs left first, the mean
  would rise with no help from matching. `same_specs_level0_mean_p_success` is the level-0
  mean P of exactly the jobs assigned at that level: the gain over it is the metadata's.
- Package mix. The jobs that need few features (a few large packages) are most of the
  survivors at high levels, so a mean pooled over jobs (`pooled_mean_p_success`, also given)
  tracks which packages survive more than what matching does to each.

This module is the experiment (encoding, cross-fitting, the levels); the fitted models as
lookup tables are `broker.success.compat_scoring`, the table, plot and CLI subcommand
`broker.success.compat_report`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from broker.success.compat_scoring import Scorer, reference_scorer
from broker.success.eval import DatasetError, Package, fit_ours, load_dir, population_logit
from broker.success.model import SuccessModel
from broker.success.references import SmoothedNB

ABSENT = "absent"
CV_FOLDS = 5
# Jobs x clusters held at once (a few bytes each, several arrays): about 2 GB at most.
MAX_CELLS = 2e8
_SUBSYSTEM = re.compile(r"^(?P<dep>.+?)-(?:compiler[-_])?version$")


def subsystem_of(feature: str) -> str:
    """`cmake-version` and `cmake-compiler-version` -> `cmake`; any other name is its own."""
    m = _SUBSYSTEM.match(feature)
    return m.group("dep") if m else feature


class Experiment:
    """Encoded specs, clusters and cross-fitted scorers; `run` walks the levels."""

    def __init__(self, packages: list[Package], n_clusters: int, seed: int):
        if n_clusters < 1:
            raise DatasetError("--clusters must be at least 1")
        self.rng = np.random.default_rng(seed)
        self.skipped = {p.name: f"{len(p.y)} row(s): cannot be cross-fitted" for p in packages}
        self.packages = [p for p in packages if len(p.y) >= 2]
        for p in self.packages:
            del self.skipped[p.name]
        if not self.packages:
            raise DatasetError("no package has the two builds cross-fitting needs")
        n_jobs = int(sum(p.y.sum() for p in self.packages))
        if n_jobs * n_clusters > MAX_CELLS:
            raise DatasetError(
                f"--clusters {n_clusters} x {n_jobs} jobs is more than the {MAX_CELLS:.0e} "
                "job-cluster pairs a run holds in memory; use fewer clusters"
            )
        self.features = sorted({f for p in self.packages for f in p.features})
        fidx = {f: j for j, f in enumerate(self.features)}
        self.vocab = [
            sorted({r[f] for p in self.packages if f in p.features for r in p.rows} - {ABSENT})
            for f in self.features
        ]
        codes = [{v: i for i, v in enumerate(vs)} for vs in self.vocab]
        self.clusters = self._draw_clusters(n_clusters)
        # Specs: -1 = no requirement (absent, or not a feature of the package).
        n = sum(len(p.y) for p in self.packages)
        self.required = np.full((n, len(self.features)), -1, dtype=np.int32)
        self.package_of = np.zeros(n, dtype=int)
        self.outcome = np.concatenate([p.y for p in self.packages])
        self.columns: list[np.ndarray] = []  # per package: its features' global indices
        start = 0
        for k, p in enumerate(self.packages):
            cols = np.array([fidx[f] for f in p.features], dtype=int)
            self.columns.append(cols)
            for i, r in enumerate(p.rows):
                for f, j in zip(p.features, cols, strict=True):
                    if r[f] != ABSENT:
                        self.required[start + i, j] = codes[j][r[f]]
            self.package_of[start : start + len(p.y)] = k
            start += len(p.y)
        self.subsystems = sorted({subsystem_of(f) for f in self.features})
        self.order = [self.subsystems[i] for i in self.rng.permutation(len(self.subsystems))]
        self.fold_of = np.zeros(n, dtype=int)
        self.ours: list[list[Scorer]] = []
        self.reference: list[list[Scorer]] = []
        self._fit(seed)
        self.jobs = np.flatnonzero(self.outcome == 1)  # the builds known to succeed
        self.priority = self.rng.random((len(self.jobs), n_clusters), dtype=np.float32)

    def _draw_clusters(self, n_clusters: int) -> np.ndarray:
        """Each feature's value uniformly from its vocabulary; a feature no build ever needs
        (always `absent`) has no value to give and stays at code 0, never compared."""
        sizes = np.array([max(len(vs), 1) for vs in self.vocab])
        return self.rng.integers(0, sizes, size=(n_clusters, len(sizes)))

    # --- models ---

    def _fit(self, seed: int) -> None:
        start = 0
        for k, pkg in enumerate(self.packages):
            cols = self.columns[k]
            n_cats = [len(self.vocab[j]) + 1 for j in cols]  # + absent
            x = self._codes(self.required[start : start + len(pkg.y)], cols, None)
            folds = KFold(n_splits=min(CV_FOLDS, len(pkg.y)), shuffle=True, random_state=seed)
            prior = population_logit(self.packages, pkg.name)
            ours, ref = [], []
            for f, (train, test) in enumerate(folds.split(x)):
                self.fold_of[start + test] = f
                ours.append(self._ours_scorer(fit_ours(pkg, train, prior), cols))
                nb = SmoothedNB(n_cats).fit(x[train], pkg.y[train])
                ref.append(reference_scorer(nb))
            self.ours.append(ours)
            self.reference.append(ref)
            start += len(pkg.y)

    def _ours_scorer(self, model: SuccessModel, cols: np.ndarray) -> Scorer:
        bias = float(model.weights[0])
        tables = []
        for j in cols:
            name = self.features[j]
            values = [*self.vocab[j], ABSENT]
            tables.append(np.array([model.explain({name: v})[0] - bias for v in values]))
        return Scorer(bias, tables)

    def _codes(
        self, required: np.ndarray, cols: np.ndarray, cluster: np.ndarray | None
    ) -> np.ndarray:
        """The environment each build sees, as codes per package feature: the cluster's value
        where the spec needs the feature (its own value if there is no cluster), else absent."""
        req = required[:, cols]
        absent = np.array([len(self.vocab[j]) for j in cols])
        have = req if cluster is None else self.clusters[cluster][:, cols]
        return np.where(req < 0, absent, have)

    # --- the levels ---

    def assignments(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Per level: (level, schedulable mask, chosen cluster) over the jobs (module doc)."""
        required = self.required[self.jobs]
        compatible = np.ones((len(self.jobs), len(self.clusters)), dtype=bool)
        by_subsystem: dict[str, list[int]] = {}
        for j, f in enumerate(self.features):
            by_subsystem.setdefault(subsystem_of(f), []).append(j)
        for level in range(len(self.order) + 1):
            if level:
                for j in by_subsystem[self.order[level - 1]]:
                    need = required[:, j][:, None]
                    compatible &= (need < 0) | (need == self.clusters[:, j][None, :])
            ok = np.asarray(compatible.any(axis=1))
            yield level, ok, np.argmax(np.where(compatible, self.priority, -1.0), axis=1)

    def run(self) -> dict[str, Any]:
        jobs = self.jobs
        n = len(jobs)
        if not n:
            raise DatasetError("no build succeeded: there is no job to schedule")
        level0_ours: np.ndarray | None = None
        levels = []
        for level, ok, chosen in self.assignments():
            p_ours = self._score(self.ours, chosen, ok)
            p_ref = self._score(self.reference, chosen, ok)
            if level0_ours is None:
                level0_ours = p_ours
            levels.append(
                {
                    "level": level,
                    "subsystems": self.order[:level],
                    "mean_p_success": self._package_mean(p_ours, ok),
                    "score_fraction": round(float(p_ours[ok].sum()) / n, 4),
                    "unschedulable_fraction": round(1.0 - float(ok.mean()), 4),
                    "reference_mean_p_success": self._package_mean(p_ref, ok),
                    "reference_score_fraction": round(float(p_ref[ok].sum()) / n, 4),
                    "same_specs_level0_mean_p_success": self._package_mean(level0_ours, ok),
                    "pooled_mean_p_success": _mean(p_ours[ok]),
                    "assigned": int(ok.sum()),
                    "packages_assigned": int(len(np.unique(self.package_of[jobs][ok]))),
                }
            )
        return {
            "specs": n,
            "builds": len(self.outcome),
            "packages": len(self.packages),
            "clusters": len(self.clusters),
            "features": len(self.features),
            "subsystem_order": self.order,
            "skipped": self.skipped,
            "levels": levels,
        }

    def _package_mean(self, p: np.ndarray, ok: np.ndarray) -> float | None:
        """Mean over packages of the mean P of each package's assigned jobs: one application,
        one vote, as eval-success averages; pooled over jobs, the few packages whose jobs need
        few features would be most of the survivors at high levels (`pooled_mean_p_success`)."""
        package_of = self.package_of[self.jobs]
        means = [p[ok & (package_of == k)].mean() for k in np.unique(package_of[ok])]
        return round(float(np.mean(means)), 4) if means else None

    def _score(self, scorers: list[list[Scorer]], chosen: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """P(success) of each job on its cluster, by the fold model that never saw it."""
        jobs = self.jobs
        p = np.full(len(jobs), np.nan)
        package_of, fold_of = self.package_of[jobs], self.fold_of[jobs]
        for k, cols in enumerate(self.columns):
            for f, scorer in enumerate(scorers[k]):
                idx = np.flatnonzero(ok & (package_of == k) & (fold_of == f))
                if len(idx):
                    codes = self._codes(self.required[jobs[idx]], cols, chosen[idx])
                    p[idx] = scorer.score(codes)
        return p


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if len(values) else None


def run_experiment(directory: Path, clusters: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Load, encode, cross-fit and walk the levels; the report the CLI prints as JSON."""
    packages = load_dir(directory)
    with threadpool_limits(1):
        report = Experiment(packages, clusters, seed).run()
    report["seed"] = seed
    return report
