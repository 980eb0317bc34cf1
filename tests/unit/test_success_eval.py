"""`tpv-broker eval-success`: on the tiny synthetic fixture always, on the real dataset if here."""

import json
from pathlib import Path

import numpy as np
import pytest

from broker.cli import main
from broker.success.eval import evaluate_package, load_dir, tuning_split
from broker.success.model import SuccessModel
from broker.success.references import OneHotLogistic, SmoothedNB

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "spack"
DATASET = REPO.parent / "shared" / "datasets" / "spack-build-outcomes"


def run_cli(capsys, *args):
    code = main(["eval-success", *map(str, args)])
    out = capsys.readouterr()
    return code, out


def test_cli_prints_both_models_per_package_and_json_last(capsys):
    code, out = run_cli(capsys, FIXTURE, "--folds", "5", "--seed", "3")
    assert code == 0
    report = json.loads(out.out.strip().splitlines()[-1])
    for model in ("ours", "reference", "logistic"):
        assert set(report[model]) == {"mean_accuracy", "mean_brier", "mean_log_loss"}
    assert report["folds"] == 5 and report["seed"] == 3
    per = report["per_package"]
    assert set(per) == {"alpha", "beta", "epsilon"}
    # edge cases are answered, not crashed on
    assert set(report["skipped"]) == {"gamma", "delta"}  # one row, no rows
    assert per["beta"]["folds"] == 5 and not per["beta"]["fewer_folds"]
    assert per["epsilon"]["folds"] == 5
    # the means are the means of what is printed per package
    mean = np.mean([p["ours"]["brier"] for p in per.values()])
    assert report["ours"]["mean_brier"] == pytest.approx(mean, abs=1e-4)
    # alpha: gcc 7.x fails; the model finds it from the feature, and is not certain of it
    assert per["alpha"]["ours"]["accuracy"] >= 0.95
    assert 0 < per["alpha"]["ours"]["log_loss"] < 0.3


def test_fewer_folds_when_a_package_is_too_small(capsys):
    code, out = run_cli(capsys, FIXTURE)  # 10 folds asked
    report = json.loads(out.out.strip().splitlines()[-1])
    assert code == 0
    assert report["fewer_folds"]["beta"] == 6  # six builds, all successes
    assert report["fewer_folds"]["epsilon"] == 9  # nine failures is the larger class
    assert "fewer folds" in out.out


def test_all_success_package_gets_honest_not_certain_probabilities():
    pkg = next(p for p in load_dir(FIXTURE) if p.name == "beta")
    res = evaluate_package(pkg, folds=10, seed=0, prior_logit=0.0)
    assert res["ours"]["accuracy"] == 1.0
    assert 0 < res["ours"]["log_loss"] < 0.7  # below a coin, above a certainty it cannot have
    # one-class training folds: the references answer the rule of succession, not certainty
    for model in ("reference", "logistic"):
        assert res[model]["accuracy"] == 1.0
        assert 0 < res[model]["log_loss"] < 0.7
    # ours has the other packages' rate as its prior and is the surer of the three
    assert res["ours"]["log_loss"] < res["reference"]["log_loss"]


def test_references_never_answer_exactly_0_or_1():
    """Naive Bayes multiplies many agreeing features: clipped to the n-build bound."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(40, 12))
    y = (x[:, 0] == 1).astype(int)
    x[:, 1:] = x[:, [0]]  # twelve copies of the one informative feature
    p_lr = OneHotLogistic().fit(x, y).predict_proba(x)
    assert np.all((p_lr > 0) & (p_lr < 1))
    p_nb = SmoothedNB([2] * 12).fit(x, y).predict_proba(x)
    assert np.all(np.minimum(p_nb, 1 - p_nb) >= 1 / 42 - 1e-12)
    assert SmoothedNB([2] * 12).fit(x, np.ones(40, dtype=int)).predict_proba(x)[0] == 41 / 42
    # the clip binds: unclipped naive Bayes is far more certain than 41/42 here
    nb = SmoothedNB([2] * 12).fit(x, y)
    assert nb.nb is not None and nb.nb.predict_proba(x)[:, 1].max() > 1 - 1e-6


def test_unusable_input_is_one_line_and_exit_2(tmp_path, capsys):
    code, out = run_cli(capsys, tmp_path / "missing")
    assert code == 2 and "not a directory" in out.err
    (tmp_path / "x.csv").write_text("spec,gcc-version,outcome\na,9,maybe\n")
    code, out = run_cli(capsys, tmp_path)
    assert code == 2 and "x.csv:2" in out.err and "Traceback" not in out.err


def test_tuning_split_is_fixed_by_name():
    assert tuning_split("kokkos") and not tuning_split("zfp")


@pytest.mark.skipif(not DATASET.is_dir(), reason=f"shared dataset not present at {DATASET}")
def test_every_real_package_fits_and_predicts_without_crashing():
    packages = load_dir(DATASET)
    assert len(packages) > 30
    for pkg in packages:
        model = SuccessModel().fit(pkg.rows, pkg.y, 1 - pkg.y)
        p = model.predict_proba(pkg.rows + [{f: "never-seen" for f in pkg.features}])
        assert np.all((p > 0) & (p < 1)), pkg.name


@pytest.mark.skipif(not DATASET.is_dir(), reason=f"shared dataset not present at {DATASET}")
def test_real_small_packages_beat_the_reference_on_brier():
    """A quick slice (the full run is `tpv-broker eval-success` / benchmarks/success.py)."""
    packages = {p.name: p for p in load_dir(DATASET)}
    ours, ref = [], []
    for name in ("scr", "qwt", "openmpi", "adios", "umpire", "superlu-dist"):
        res = evaluate_package(packages[name], folds=10, seed=0, prior_logit=1.5)
        ours.append(res["ours"]["brier"])
        ref.append(res["reference"]["brier"])
    assert np.mean(ours) < np.mean(ref)
