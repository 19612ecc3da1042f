"""Curves on experiment directories written in Tune's format: numbers checked by hand, plots, determinism,
partial and damaged sweeps, and no Ray."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from scipy.stats import spearmanr

from mmkd.curves.aggregate import find_experiment, load_results, read_examples, trial_status
from mmkd.curves.fit import best_per_cell, bootstrap_ci, final_rows, fit_curve, spearman
from mmkd.curves.report import build_curves
from mmkd.errors import UserInputError

from .tune_fixture import write_experiment

PNGS = ["score_vs_ratio.png", "wlr_vs_ratio.png", "lr_vs_wlr.png", "heatmap_chrf.png", "heatmap_wlr.png"]
TABLES = ["results.csv", "results.parquet", "best_per_cell.csv", "fits.csv"]
# (student, ratio, adapter) → (best lr, zero-shot chrF), from tune_fixture.base_score by hand:
# chrF base = 30 (+5 for student s) + {ratio 4: 0, 16: 6, 64: 4, 256: 1} + {full: lr 1e-4 → 4,
# adapters: lr 1e-3 → 5}; zero-shot chrF = base - 0.5.
BEST = {
    ("xs", 16.0, "full"): (1e-4, 39.5),
    ("xs", 16.0, "lora r=8"): (1e-3, 40.5),
    ("xs", 64.0, "full"): (1e-4, 37.5),  # three seeds at 38, 39, 37
    ("xs", 64.0, "lora r=8"): (1e-3, 38.5),
    ("xs", 256.0, "full"): (1e-4, 34.5),
    ("xs", 256.0, "lora r=8"): (1e-3, 35.5),
    ("s", 4.0, "full"): (1e-4, 38.5),
    ("s", 4.0, "lora r=8"): (1e-3, 39.5),
    ("s", 16.0, "full"): (1e-4, 44.5),
    ("s", 16.0, "lora r=8"): (1e-3, 45.5),
    ("s", 64.0, "full"): (1e-4, 42.5),
    ("s", 64.0, "lora r=8"): (1e-3, 43.5),
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    path = tmp_path_factory.mktemp("exp") / "sweep"
    trials = write_experiment(path)
    return path, {t.trial_id: t for t in trials}


@pytest.fixture(scope="module")
def built(sweep):
    """One build shared by the tests that only read its outputs."""
    return build_curves(sweep[0])


def _error_trial(trials):
    return next(t for t in trials.values() if t.status == "ERROR")


# ---------------------------------------------------------------------------------------------------
# The tidy table
# ---------------------------------------------------------------------------------------------------


def test_tidy_table_has_one_row_per_trial_and_step(sweep):
    path, trials = sweep
    df = load_results(path)
    assert df["trial_id"].nunique() == len(trials) == 39  # mmkd/ is not a trial
    assert not df.duplicated(["trial_id", "step"]).any()
    assert df[["trial_id", "step"]].equals(df[["trial_id", "step"]].sort_values(["trial_id", "step"]))
    assert list(df.columns[:6]) == ["trial_id", "trial_dir", "status", "stopped_by", "error", "step"]
    for column in (
        "lr",
        "adapter_rank",
        "ratio",
        "seed",
        "max_steps",
        "eval/de/wlr",
        "eval/score",
        "train/loss",
    ):
        assert column in df
    assert not {"config", "timestamp", "pid", "training_iteration", "done"} & set(df.columns)
    # The resumed trial reported step 10 twice: the later report (chrF base 2 → zero-shot 1.5) is kept.
    errored = df[df["trial_id"] == _error_trial(trials).trial_id]
    assert errored["step"].tolist() == [10] and errored["eval/score"].iloc[0] == pytest.approx(1.5)


def test_status_stopped_by_and_error_come_from_tune_files(sweep):
    path, trials = sweep
    df = load_results(path).groupby("trial_id").tail(1).set_index("trial_id")  # each last report
    error_id = _error_trial(trials).trial_id
    # The older state file says PENDING for all: the newest one wins.
    assert trial_status(path)[error_id] == "ERROR" and df.loc[error_id, "status"] == "ERROR"
    assert df.loc[error_id, "stopped_by"] == "error"
    assert df.loc[error_id, "error"] == "RuntimeError: CUDA out of memory"
    early = df[df["step"] < 20].drop(error_id)
    assert sorted(early["stopped_by"]) == ["asha", "asha", "wlr"]  # reported, derived, recorded
    assert (df.drop([error_id, *early.index])["stopped_by"] == "max_steps").all()
    assert (df.drop(error_id)["error"] == "").all()


def test_a_state_file_being_written_falls_back_to_the_previous_one(sweep, tmp_path):
    path, _ = sweep
    copy = tmp_path / "sweep"
    _copy_tree(path, copy)
    before = trial_status(copy)
    (copy / "experiment_state-2026-11-24_11-00-00.json").write_text('{"trial_data": [["{\\"trial_id')
    assert trial_status(copy) == before


def test_without_state_files_statuses_come_from_the_trial_folders(sweep, tmp_path):
    path, trials = sweep
    copy = tmp_path / "sweep"
    _copy_tree(path, copy)
    for state in copy.glob("experiment_state-*.json"):
        state.unlink()
    statuses = trial_status(copy)
    assert statuses[_error_trial(trials).trial_id] == "ERROR"  # error.txt
    finished = [t.trial_id for t in trials.values() if t.reports and t.reports[-1][0] == 20]
    assert {statuses[t] for t in finished} == {"TERMINATED"}  # reached max_steps
    assert len(load_results(copy)) == len(load_results(path))


def test_a_line_cut_short_by_a_crash_is_skipped(sweep, tmp_path):
    path, trials = sweep
    copy = tmp_path / "sweep"
    _copy_tree(path, copy)
    trial = next(iter(trials.values()))
    with (copy / trial.dirname / "result.json").open("a") as f:
        f.write('{"step": 30, "eval/score": 9')
    pd.testing.assert_frame_equal(load_results(copy), load_results(path))


def test_examples_are_read_by_their_step(sweep, tmp_path):
    path, trials = sweep
    trial = next(iter(trials.values()))
    rows = read_examples(path / trial.dirname, 20)
    assert rows is not None and len(rows) == 5 * 40 and set(rows["lang"]) == {"en", "de", "ru", "te", "ta"}
    assert read_examples(path / trial.dirname, 10) is not None
    assert read_examples(path / trial.dirname, 30) is None  # no file holds step 30: no interval
    # Rows that say they are of another step are not used for this one.
    copy = tmp_path / "trial"
    _copy_tree(path / trial.dirname, copy)
    (copy / "mmkd_examples" / "000010.jsonl").replace(copy / "mmkd_examples" / "000020.jsonl")
    assert read_examples(copy, 20) is None


# ---------------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------------


def test_best_per_cell_matches_hand_computed_values(sweep):
    path, _ = sweep
    best = best_per_cell(final_rows(load_results(path)))
    got = {
        (student, ratio, adapter): (lr, score)
        for student, ratio, adapter, lr, score in best[
            ["student", "ratio", "adapter", "lr", "eval/score"]
        ].itertuples(index=False, name=None)
    }
    assert got.keys() == BEST.keys()
    for cell, (lr, score) in BEST.items():
        assert got[cell][0] == lr, cell
        assert got[cell][1] == pytest.approx(score), cell
    cell = best.set_index(["student", "ratio", "adapter"]).loc[("xs", 16.0, "full")]
    assert cell["zero_shot_high/chrf"] == pytest.approx(44.0)  # base + (5 + 3) / 2
    assert cell["low_resource/chrf"] == pytest.approx(35.0)  # base - (4 + 6) / 2
    assert cell["zero_shot/wlr"] == pytest.approx((4 / 36 + 11 / 36) / 2)  # 4 and 11 wrong of 36 determined
    counts = best.set_index(["student", "ratio", "adapter"])[["n_trials", "n_seeds"]]
    assert counts.loc[("xs", 64.0, "full")].tolist() == [5, 3]  # 3 learning rates + 2 more seeds
    assert counts.loc[("xs", 256.0, "full")].tolist() == [4, 1]  # + the errored trial
    assert counts.loc[("s", 16.0, "lora r=8")].tolist() == [3, 1]


def test_spearman_matches_scipy_with_ties_and_missing_values():
    x = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-2, 3e-2, 1e-4]
    y = [0.1, 0.3, 0.2, 0.8, 0.9, 0.7, 0.95, 0.1]
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert spearman([*x, 0.5], [*y, math.nan]) == pytest.approx(spearmanr(x, y).statistic)
    assert math.isnan(spearman([1, 2], [3, 4]))
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    low, high = bootstrap_ci(rng.normal(50.0, 10.0, size=400).tolist())
    assert low < 50.0 < high and high - low < 4.5  # ± 1.96 · 10 / √400 ≈ ± 0.98
    covered = 0
    for _ in range(200):
        low, high = bootstrap_ci(rng.exponential(2.0, size=100).tolist(), rng=rng)
        covered += low < 2.0 < high
    assert 0.88 <= covered / 200 <= 0.99


def test_example_intervals_sit_around_the_reported_chrf(built):
    best = pd.read_csv(built.parent / "best_per_cell.csv").set_index(["student", "ratio", "adapter"])
    single, seeds = best.loc[("xs", 16.0, "full")], best.loc[("xs", 64.0, "full")]
    # Sentence chrF in the fixture runs 2 points above the reported corpus chrF: the interval is shifted
    # onto the reported value, not onto the mean sentence chrF.
    assert single["zero_shot/chrf_lo"] < 39.5 < single["zero_shot/chrf_hi"] < 41.5
    assert single["zero_shot/wlr_lo"] < single["zero_shot/wlr"] < single["zero_shot/wlr_hi"]
    assert single["ci_over"] == "examples" and seeds["ci_over"] == "examples+seeds"
    width = best["zero_shot/chrf_hi"] - best["zero_shot/chrf_lo"]
    assert width.loc[("xs", 64.0, "full")] > width.loc[("xs", 16.0, "full")]  # seeds add their spread


def test_fitted_curve_finds_the_best_ratio():
    ratios = [2, 4, 8, 16, 32, 64]
    scores = [40 - (math.log2(r) - 3.5) ** 2 for r in ratios]  # peak at log2 r = 3.5
    replicates = np.array(scores)[:, None] + np.random.default_rng(0).normal(0, 0.3, size=(6, 200))
    fit = fit_curve(ratios, scores, replicates)
    assert fit is not None and fit.coef == pytest.approx((40 - 3.5**2, 7.0, -1.0))
    assert fit.best_ratio == pytest.approx(2**3.5)
    assert fit.best_ratio_low < fit.best_ratio < fit.best_ratio_high
    line = fit_curve([4, 16], [30.0, 20.0])
    assert line is not None and line.best_ratio == 4 and line.coef[2] == 0  # a line: the better end
    assert fit_curve([4, 4], [1.0, 2.0]) is None


def test_fits_table_has_the_hand_computed_best_ratio(built):
    fits = pd.read_csv(built.parent / "fits.csv").set_index(["student", "adapter", "metric"])
    # s, full: chrF at log2 r = 2, 4, 6 is base + 0, 6, 4 → vertex at 4.5 (ratio 22.6), c = -1
    row = fits.loc[("s", "full", "zero_shot/chrf")]
    assert row["best_ratio"] == pytest.approx(2**4.5, rel=1e-5) and row["c"] == pytest.approx(-1.0)
    assert row["best_ratio_lo"] <= row["best_ratio"] <= row["best_ratio_hi"]
    # xs: 16 > 64 > 256, the best end of the range (never extrapolated below the ratios tried)
    assert fits.loc[("xs", "full", "zero_shot/chrf"), "best_ratio"] == pytest.approx(16.0)


# ---------------------------------------------------------------------------------------------------
# The build: plots, report, determinism, partial sweeps
# ---------------------------------------------------------------------------------------------------


def test_build_writes_valid_pngs_and_a_report_that_embeds_them(built, sweep):
    out = built.parent
    assert out == sweep[0] / "mmkd" / "curves"
    text = built.read_text()
    for name in PNGS:
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        image = imread(png)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300, name
        assert f"]({name})" in text, name
    for name in TABLES:
        assert (out / name).is_file() and f"]({name})" in text, name
    final = final_rows(load_results(sweep[0]))
    rho = spearmanr(final["lr"], final["eval/zero_shot/wlr"]).statistic
    assert f"Spearman ρ = {rho:.2f} [" in text
    assert "| xs | 16 | full | 1.00e-04 |" in text
    assert "RuntimeError: CUDA out of memory" in text


def test_same_input_gives_byte_identical_outputs(sweep, built, tmp_path):
    path, _ = sweep
    again = build_curves(path, tmp_path / "again").parent
    for name in [*TABLES, *PNGS, "report.md"]:
        assert (built.parent / name).read_bytes() == (again / name).read_bytes(), name
    pd.testing.assert_frame_equal(pd.read_parquet(again / "results.parquet"), load_results(path))


def test_partial_sweep(tmp_path):
    path = tmp_path / "partial"
    trials = write_experiment(path, partial=True)
    running = next(t for t in trials if t.status == "RUNNING")
    df = load_results(path)
    assert df.loc[df["trial_id"] == running.trial_id, "stopped_by"].tolist() == [""]
    assert trial_status(path)[next(t for t in trials if t.status == "PENDING").trial_id] == "PENDING"
    report = build_curves(path, tmp_path / "out")
    text = report.read_text()
    assert "1 pending" in text and "1 running" in text and "Partial sweep" in text
    best = pd.read_csv(tmp_path / "out" / "best_per_cell.csv").set_index(["student", "ratio", "adapter"])
    cell = best.loc[("s", 4.0, "lora r=8")]  # the running trial leads its cell at its latest evaluation
    assert (cell["lr"], cell["status"], cell["step"]) == (5e-4, "RUNNING", 10)


def test_sweep_without_evaluations_yet(tmp_path):
    path = tmp_path / "fresh"
    path.mkdir()
    (path / "experiment_state-2026-11-24_10-00-00.json").write_text(
        json.dumps({"trial_data": [[json.dumps({"trial_id": "a_00000", "status": "PENDING"}), "{}"]]})
    )
    report = build_curves(path)
    assert "No evaluations yet" in report.read_text() and "1 pending" in report.read_text()
    assert list(pd.read_csv(report.parent / "results.csv").columns[:2]) == ["trial_id", "trial_dir"]


def test_not_an_mmkd_sweep_is_a_user_error(tmp_path):
    trial = tmp_path / "other" / "trainable_x_00000_0_2026-11-24_10-00-00"
    trial.mkdir(parents=True)
    (trial / "result.json").write_text(json.dumps({"step": 1, "eval/score": 1.0, "trial_id": "x"}) + "\n")
    with pytest.raises(UserInputError, match="student"):
        build_curves(tmp_path / "other")


def test_find_experiment(sweep, tmp_path):
    path, _ = sweep
    assert find_experiment(str(path)) == path.resolve()
    assert find_experiment("sweep", storage=path.parent) == path.resolve()
    with pytest.raises(UserInputError, match="nope"):
        find_experiment("nope", storage=path.parent)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="not a sweep"):
        find_experiment(str(tmp_path / "empty"))
    with pytest.raises(UserInputError, match="missing"):
        build_curves(tmp_path / "missing")


def test_curves_never_import_ray(sweep, tmp_path):
    code = (
        "import sys; from pathlib import Path; from mmkd.curves.report import build_curves; "
        f"build_curves(Path({str(sweep[0])!r}), Path({str(tmp_path)!r})); "
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("curves"))


def test_adapter_effect_is_lora_minus_full_at_the_same_learning_rate():
    from mmkd.curves.fit import adapter_effect

    rng = np.random.default_rng(1)
    lr = np.repeat(10.0 ** np.linspace(-4, -2, 8), 2)
    lora = np.tile([0, 8], 8)
    # WLR rises by 0.2 a decade of learning rate; adapters add 0.1 at every rate.
    noise = rng.normal(0, 0.01, len(lr))
    final = pd.DataFrame(
        {"lr": lr, "adapter_rank": lora, "wlr": 0.9 + 0.2 * np.log10(lr) + 0.1 * (lora > 0) + noise}
    )
    effect, low, high = adapter_effect(final, "wlr")
    assert effect == pytest.approx(0.1, abs=0.02)
    assert low < effect < high and low > 0.05 and high < 0.15
    # Lower learning rates for the adapters alone would fool a plain difference of means; not this.
    shifted = final.assign(lr=np.where(final["adapter_rank"] > 0, final["lr"] / 10, final["lr"]))
    shifted["wlr"] = 0.9 + 0.2 * np.log10(shifted["lr"]) + 0.1 * (lora > 0) + noise
    naive = shifted.groupby(shifted["adapter_rank"] > 0)["wlr"].mean()
    assert naive[True] - naive[False] < 0
    assert adapter_effect(shifted, "wlr")[0] == pytest.approx(0.1, abs=0.02)
    assert np.isnan(adapter_effect(final[final["adapter_rank"] == 0], "wlr")[0])


def test_partial_spearman_holds_the_other_settings_fixed():
    from mmkd.curves.fit import partial_spearman, spearman_ci, varied_settings

    # Within each auxiliary-translation setting WLR rises with the learning rate; the setting itself
    # moves WLR far more, and its trials sit at the high learning rates: the plain rho is negative.
    lr = np.array([1e-4, 2e-4, 4e-4, 8e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2])
    aux = np.array([0, 0, 0, 0, 0, 0.1, 0.1, 0.1, 0.1, 0.1])
    wlr = np.where(aux > 0, 0.0, 0.5) + np.log10(lr) / 20
    final = pd.DataFrame({"lr": lr, "wlr": wlr, "aux_translation": aux, "student": "s"})
    assert varied_settings(final) == ["aux_translation"]
    assert spearman_ci(lr.tolist(), wlr.tolist())[0] < 0
    rho, low, high = partial_spearman(final, "lr", "wlr", ["aux_translation"])
    assert rho == pytest.approx(1.0)
    assert low > 0.9
    # Noise instead of an effect: the interval covers 0.
    noisy = final.assign(wlr=np.random.default_rng(0).permutation(wlr))
    rho, low, high = partial_spearman(noisy, "lr", "wlr", ["aux_translation"])
    assert low < 0 < high
