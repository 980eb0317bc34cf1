"""`tpv-broker compat-experiment`: the matching rule, the levels, and that the rise in P(success)
is the models' knowledge, not an artefact of scoring or of who survives."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from broker.cli import main
from broker.success.compat_experiment import Experiment, run_experiment, subsystem_of
from broker.success.eval import load_dir

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "spack"
LEVEL_KEYS = {
    "level",
    "subsystems",
    "mean_p_success",
    "score_fraction",
    "unschedulable_fraction",
    "reference_mean_p_success",
}


def run_cli(capsys, *args):
    code = main(["compat-experiment", *map(str, args)])
    return code, capsys.readouterr()


def test_cli_json_last_line_levels_and_plot(capsys, tmp_path):
    png = tmp_path / "curves.png"
    code, out = run_cli(capsys, FIXTURE, "--clusters", "50", "--seed", "4", "--plot", png)
    assert code == 0, out.err
    report = json.loads(out.out.strip().splitlines()[-1])
    levels = report["levels"]
    assert all(set(lv) >= LEVEL_KEYS for lv in levels)
    # fixture features: gcc, cmake, python, zlib versions -> four subsystems, levels 0..4
    assert sorted(report["subsystem_order"]) == ["cmake", "gcc", "python", "zlib"]
    assert [lv["level"] for lv in levels] == [0, 1, 2, 3, 4]
    assert [len(lv["subsystems"]) for lv in levels] == [0, 1, 2, 3, 4]
    assert levels[-1]["subsystems"] == report["subsystem_order"]
    assert levels[0]["unschedulable_fraction"] == 0.0  # no metadata: every cluster fits
    u = [lv["unschedulable_fraction"] for lv in levels]
    assert u == sorted(u)
    assert set(report["skipped"]) == {"gamma", "delta"}  # one build, no builds
    for lv in levels:  # an unschedulable job scores 0: the fraction is below the mean
        if lv["mean_p_success"] is not None:
            assert 0 < lv["mean_p_success"] < 1 and 0 < lv["reference_mean_p_success"] < 1
            assert lv["score_fraction"] <= lv["pooled_mean_p_success"] + 1e-9
    assert png.stat().st_size > 1000


def test_same_seed_same_answer_other_seed_other_clusters():
    a = run_experiment(FIXTURE, clusters=30, seed=7)
    b = run_experiment(FIXTURE, clusters=30, seed=7)
    c = run_experiment(FIXTURE, clusters=30, seed=8)
    assert a == b
    assert a["levels"] != c["levels"]


def test_a_job_goes_only_to_a_cluster_equal_on_every_included_requirement():
    ex = Experiment(load_dir(FIXTURE), n_clusters=40, seed=1)
    required = ex.required[ex.jobs]
    included: list[int] = []
    for level, ok, chosen in ex.assignments():
        if level:
            sub = ex.order[level - 1]
            included += [j for j, f in enumerate(ex.features) if subsystem_of(f) == sub]
        cols = np.array(included, dtype=int)
        need = required[:, cols]
        # brute force: which jobs have any cluster equal on every requirement (absent: -1)?
        fits = np.array(
            [
                any(np.all((r < 0) | (ex.clusters[c, cols] == r)) for c in range(len(ex.clusters)))
                for r in need
            ]
        )
        assert np.array_equal(ok, fits)
        got = ex.clusters[chosen][:, cols]
        assert np.all(((need < 0) | (got == need))[ok])


def test_absent_requires_nothing(tmp_path):
    rows = [("s0", "absent", "absent", "success"), ("s1", "absent", "absent", "success")]
    rows += [(f"t{i}", f"1.{i}.0", f"2.{i}", "success") for i in range(6)]
    write_package(tmp_path / "p.csv", ["a-version", "b-version"], rows)
    ex = Experiment(load_dir(tmp_path), n_clusters=3, seed=0)
    *_, (_, ok, _) = ex.assignments()
    assert ok[:2].all()  # the two builds that use neither dependency fit any cluster


def test_unusable_input_is_one_line_and_exit_2(tmp_path, capsys):
    code, out = run_cli(capsys, tmp_path / "missing")
    assert code == 2 and "not a directory" in out.err
    for clusters in ("0", "10000000000"):
        code, out = run_cli(capsys, FIXTURE, "--clusters", clusters)
        assert code == 2 and "--clusters" in out.err and "Traceback" not in out.err
    write_package(tmp_path / "bad.csv", ["a-version"], [("s0", "1", "failure")] * 3)
    code, out = run_cli(capsys, tmp_path)
    assert code == 2 and "no build succeeded" in out.err


def write_package(path: Path, features: list[str], rows) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["spec", *features, "outcome"])
        w.writerows(rows)


def synthetic(directory: Path, seed: int, shuffle: bool) -> Path:
    """Two packages whose builds fail with gcc 7 (and 5% at random); cmake is irrelevant.
    `shuffle` permutes the outcomes: the features then say nothing."""
    rng = np.random.default_rng(seed)
    directory.mkdir()
    for name in ("one", "two"):
        gcc = rng.choice(["7.3.0", "7.5.0", "9.4.0", "11.2.0", "12.1.0"], size=300)
        cmake = rng.choice(["3.16.4", "3.18.2", "3.20.1", "3.24.0"], size=300)
        ok = ~np.char.startswith(gcc.astype(str), "7.") ^ (rng.random(300) < 0.05)
        if shuffle:
            ok = rng.permutation(ok)
        rows = [
            (f"{name}{i}", g, c, "success" if o else "failure")
            for i, (g, c, o) in enumerate(zip(gcc, cmake, ok, strict=True))
        ]
        write_package(directory / f"{name}.csv", ["gcc-version", "cmake-version"], rows)
    return directory


@pytest.mark.parametrize("seed", [0, 1])
def test_rise_is_what_the_model_learnt_not_an_artefact(tmp_path, seed):
    """Real signal: a job placed on a cluster with its own (working) gcc is predicted to
    succeed far more often than on a random cluster. Shuffled outcomes: the models are
    cross-fitted, so matching cannot score memorised labels and the curve stays flat."""
    real = run_experiment(synthetic(tmp_path / "real", seed, False), clusters=400, seed=seed)
    noise = run_experiment(synthetic(tmp_path / "noise", seed, True), clusters=400, seed=seed)
    first, last = real["levels"][0], real["levels"][-1]
    assert last["unschedulable_fraction"] < 0.2  # 20 environments, 400 clusters
    assert last["mean_p_success"] > first["mean_p_success"] + 0.2
    assert last["mean_p_success"] > last["same_specs_level0_mean_p_success"] + 0.2
    assert last["reference_mean_p_success"] > first["reference_mean_p_success"] + 0.2
    n_first, n_last = noise["levels"][0], noise["levels"][-1]
    assert abs(n_last["mean_p_success"] - n_first["mean_p_success"]) < 0.05
