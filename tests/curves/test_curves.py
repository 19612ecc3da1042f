"""Curves on an experiment directory written in Tune's format: numbers, plots, determinism, partial."""

import math
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread
from scipy.stats import spearmanr

from mmkd.curves.aggregate import load_results, trial_status
from mmkd.curves.fit import best_per_cell, bootstrap_ci, final_rows, fit_curve, spearman
from mmkd.curves.report import build_curves

from .tune_fixture import write_experiment


@pytest.fixture
def exp(tmp_path):
    truth = write_experiment(tmp_path / "sweep")
    return tmp_path / "sweep", truth


def test_tidy_table_one_row_per_trial_and_step_with_status(exp):
    path, _ = exp
    df = load_results(path)
    assert df["trial_id"].nunique() == 25
    assert not df.duplicated(["trial_id", "step"]).any()
    errored = df[df["status"] == "ERROR"]
    assert len(errored) == 1 and errored["eval/score"].iloc[0] == pytest.approx(2.0)  # the later report won
    assert set(df["stopped_by"]) == {"max_steps", "error"}
    assert trial_status(path)["00025abc"] == "ERROR"  # from the newest experiment_state


def test_best_per_cell_matches_hand_computed(exp):
    path, truth = exp
    best = best_per_cell(final_rows(load_results(path)))
    got = {(r.student, r.ratio, r.adapter): r.lr for r in best.itertuples()}
    assert set(got) == set(truth)
    for key, (_, lr) in truth.items():
        assert got[key] == lr, key
        row = best[(best["student"] == key[0]) & (best["ratio"] == key[1]) & (best["adapter"] == key[2])]
        assert row["eval/score"].iloc[0] == pytest.approx(truth[key][0])
    assert (best["n_trials"] >= 3).all()


def test_spearman_matches_scipy():
    x = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-2]
    y = [0.1, 0.3, 0.2, 0.8, 0.9, 0.7]
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert math.isnan(spearman([1, 2], [3, 4]))


def test_bootstrap_ci_contains_the_true_mean():
    rng = np.random.default_rng(1)
    sample = rng.normal(50.0, 10.0, size=400).tolist()
    low, high = bootstrap_ci(sample)
    assert low < 50.0 < high and high - low < 5


def test_fitted_curve_finds_the_best_ratio():
    ratios = [2, 4, 8, 16, 32, 64]
    scores = [40 - (math.log2(r) - 3.5) ** 2 for r in ratios]  # peak at log2 r = 3.5
    fit = fit_curve("xs", ratios, scores)
    assert fit is not None and fit.best_ratio == pytest.approx(2**3.5, rel=0.05)
    assert fit.best_ratio_low <= fit.best_ratio <= fit.best_ratio_high
    assert fit_curve("xs", [4, 4], [1, 2]) is None


def test_build_writes_valid_pngs_tables_and_a_report(exp):
    path, _ = exp
    report = build_curves(path)
    out = report.parent
    text = report.read_text()
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 5
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert imread(png).ndim == 3
        assert f"]({png.name})" in text
    assert "Spearman ρ = 1" in text  # lr and WLR are perfectly monotone in the fixture
    for name in ("results.csv", "results.parquet", "best_per_cell.csv", "fits.csv"):
        assert (out / name).is_file()


def test_same_input_gives_byte_identical_tables(exp, tmp_path):
    path, _ = exp
    a, b = build_curves(path, tmp_path / "a").parent, build_curves(path, tmp_path / "b").parent
    for name in ("results.csv", "results.parquet", "best_per_cell.csv", "fits.csv", "report.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_partial_sweep_works(tmp_path):
    write_experiment(tmp_path / "partial", partial=True)
    df = load_results(tmp_path / "partial")
    running = df[df["status"] == "RUNNING"]
    assert len(running) == 1 and running["stopped_by"].iloc[0] == ""
    assert build_curves(tmp_path / "partial").is_file()


def test_curves_never_import_ray():
    code = "import sys, mmkd.curves.report, mmkd.curves.aggregate; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
