"""The confirm stage's tables: the paired, id-joint bootstrap, confirm.csv and gain.csv, the report."""

import json

import numpy as np
import pandas as pd
import pytest

from mmkd.curves.gain import Items, confirm_tables, replicates, write_confirm

LANGS = ["en", "hi", "te"]  # en: source; hi: zero-shot high-resource; te: low-resource
ITEMS = ["test-0", "test-1"]


def examples(chrf: dict[str, list[float]], verdicts: dict[str, list[str]] | None = None) -> pd.DataFrame:
    rows = []
    for lang, scores in chrf.items():
        for i, score in enumerate(scores):
            verdict = (verdicts or {}).get(lang, ["right"] * len(scores))[i]
            rows.append((lang, ITEMS[i], score, verdict))
    return pd.DataFrame(rows, columns=["lang", "id", "chrf", "verdict"])


def test_item_draws_are_joint_across_languages_and_seeds_are_drawn_too():
    """Hand-computed: three replicates with chosen item and seed draws."""
    seed1 = examples({"en": [50, 70], "hi": [30, 50], "te": [10, 30]}, {"te": ["wrong", "right"]})
    seed2 = examples({"en": [60, 80], "hi": [40, 60], "te": [20, 40]}, {"te": ["undetermined", "right"]})
    seeds = [Items.from_examples(e, LANGS, ITEMS) for e in (seed1, seed2)]
    # Replicate 0 draws item 0 twice and seed 1 twice; 1: item 1 twice, seed 2 twice; 2: both, both.
    weights = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    seed_draws = np.array([[0, 0], [1, 1], [0, 1]])
    reps = replicates(seeds, {"source": [0], "zero_shot": [1, 2], "low_resource": [2]}, weights, seed_draws)
    assert reps["source/chrf"].tolist() == [50, 80, 65]
    # hi and te get the same item draw: replicate 0 is (hi 30 + te 10) / 2, never hi's item 0 with te's 1.
    assert reps["zero_shot/chrf"].tolist() == [20, 50, 35]
    assert reps["low_resource/chrf"].tolist() == [10, 40, 25]
    # WLR = wrong / determined per language: seed 1 (te) 1/2, seed 2 0/1 (item 0 undetermined).
    assert reps["low_resource/wlr"].tolist() == [1.0, 0.0, 0.25]


# ---------------------------------------------------------------------------------------------------
# confirm.csv and gain.csv from a confirm stage on disk
# ---------------------------------------------------------------------------------------------------

BASE = {"en": [60.0, 40.0, 50.0, 70.0], "hi": [30.0, 10.0, 45.0, 25.0], "te": [5.0, 35.0, 20.0, 12.0]}
N_ITEMS = 4


def write_stage(tmp_path, gain_by_seed: dict[int, float], shift_reported: float = 0.0, more_teachers=()):
    """A confirm stage of one cell pair (xs <- l, full finetuning): ``none`` scores BASE + seed offset,
    ``mmkd`` the same plus ``gain_by_seed[seed]`` on every item of every language. ``more_teachers``:
    (teacher, ratio, gain_by_seed) of further MMKD cells of the same student, without a control."""
    records = []
    arms = [("none", "l", 64.0, {}), ("mmkd", "l", 64.0, gain_by_seed)]
    arms += [("mmkd", teacher, ratio, gains) for teacher, ratio, gains in more_teachers]
    for method, teacher, ratio, gains in arms:
        for seed, offset in ((1, 0.0), (2, 3.0), (3, -2.0)):
            add = offset + gains.get(seed, 0.0)
            trial_id, trial_dir = f"c_{method}_{teacher}_{seed}", f"confirm/trial_{method}_{teacher}_{seed}"
            folder = tmp_path / trial_dir / "mmkd_examples"
            folder.mkdir(parents=True)
            lines = [
                {"step": 6, "lang": lang, "id": f"test-{i}", "chrf": score + add, "verdict": "right"}
                for lang, scores in BASE.items()
                for i, score in enumerate(scores)
            ]
            (folder / "test-000006.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
            record = {
                "trial_id": trial_id,
                "trial_dir": trial_dir,
                "stage": "confirm",
                "step": 6,
                "student": "xs",
                "teacher": teacher,
                "student_params": 100,
                "teacher_params": 100 * ratio,
                "ratio": ratio,
                "ratio_total": 40.0,
                "adapter_rank": 0,
                "method": method,
                "lr": 1e-3,
                "seed": seed,
                "source_lang": "en",
                "low_resource_langs": "te",
                "selected_on": "eval/source/chrf",
                "test/score": 0.0,
            }
            for lang, scores in BASE.items():
                record[f"test/{lang}/chrf"] = float(np.mean(scores)) + add + shift_reported
                record[f"test/{lang}/wlr"] = 0.0
            records.append(record)
    return pd.DataFrame(records)


def test_a_gain_the_same_on_every_item_and_seed_has_no_uncertainty(tmp_path):
    """Paired by seed and item, a constant gain has a zero-width interval, though each arm alone varies
    a lot over items and seeds (an unpaired comparison could not tell the arms apart)."""
    df = write_stage(tmp_path, {1: 5.0, 2: 5.0, 3: 5.0})
    confirm, gain = confirm_tables(df, tmp_path)
    assert len(confirm) == 2 and set(confirm["method"]) == {"none", "mmkd"}
    assert (confirm["n_seeds"] == 3).all() and (confirm["n_items"] == N_ITEMS).all()
    none = confirm.set_index("method").loc["none"]
    assert none["test/low_resource/chrf"] == pytest.approx(np.mean(BASE["te"]) + 1 / 3)
    assert none["test/low_resource/chrf_hi"] - none["test/low_resource/chrf_lo"] > 10
    row = gain[(gain["group"] == "low_resource") & (gain["metric"] == "chrf")].iloc[0]
    assert (row["method"], row["teacher"], row["ratio"], row["ratio_total"]) == ("mmkd", "l", 64.0, 40.0)
    assert row["gain"] == pytest.approx(5.0)
    assert row["ci_low"] == pytest.approx(5.0) and row["ci_high"] == pytest.approx(5.0)


def test_one_control_serves_every_teacher_paired_by_seed_and_item(tmp_path):
    """The grid trains the control once per student and adapter (it reads no teacher): the cells of the
    other teachers are compared with it, paired by the same seed and item draws."""
    df = write_stage(
        tmp_path, {1: 5.0, 2: 5.0, 3: 5.0}, more_teachers=[("m", 16.0, {1: 2.0, 2: 2.0, 3: 2.0})]
    )
    confirm, gain = confirm_tables(df, tmp_path)
    cells = sorted(zip(confirm["teacher"], confirm["method"], strict=True))
    assert cells == [("l", "mmkd"), ("l", "none"), ("m", "mmkd")]
    rows = gain[(gain["group"] == "low_resource") & (gain["metric"] == "chrf")].set_index("teacher")
    assert rows.loc["m", "gain"] == pytest.approx(2.0) and rows.loc["l", "gain"] == pytest.approx(5.0)
    # Constant gains have zero-width intervals only if the control shares the treatment's draws.
    assert rows.loc["m", ["ci_low", "ci_high"]].tolist() == pytest.approx([2.0, 2.0])
    assert rows.loc["m", "ratio"] == 16.0


def test_the_gain_interval_covers_the_seeds_and_sits_on_the_reported_values(tmp_path):
    # The reported corpus chrF runs 2 above the sentence mean: intervals are shifted onto it.
    df = write_stage(tmp_path, {1: 1.0, 2: 4.0, 3: 7.0}, shift_reported=2.0)
    confirm, gain = confirm_tables(df, tmp_path)
    mmkd = confirm.set_index("method").loc["mmkd"]
    assert mmkd["test/zero_shot/chrf"] == pytest.approx(np.mean(BASE["hi"] + BASE["te"]) + 1 / 3 + 4 + 2)
    rows = gain[gain["metric"] == "chrf"].set_index("group")
    assert rows.loc["low_resource", "gain"] == pytest.approx(4.0)
    # Only the seeds differ in gain: resampling 3 seeds gives means between 1 and 7, never beyond.
    low, high = rows.loc["low_resource", ["ci_low", "ci_high"]]
    assert 1.0 <= low < 4.0 < high <= 7.0
    # The gain of every group is the same here, and so is its paired interval.
    assert rows["ci_low"].to_numpy() == pytest.approx(low)


def test_files_and_the_report_section(tmp_path):
    df = write_stage(tmp_path, {1: 5.0, 2: 5.0, 3: 5.0})
    out = tmp_path / "curves"
    out.mkdir()
    lines, files = write_confirm(df, tmp_path, out)
    assert [p.name for p in files] == ["confirm.csv", "gain.csv", "gain_vs_ratio.png"]
    gain = pd.read_csv(out / "gain.csv")
    assert {"ci_low", "ci_high", "gain", "method", "ratio", "ratio_total"} <= set(gain.columns)
    assert "replicates" not in gain.columns
    text = "\n".join(lines)
    assert lines[0] == "## MMKD gain vs teacher/student ratio"
    # Low-resource first; one ratio per student: said, and no curve fitted.
    table = [line for line in lines if line.startswith("| ")]
    assert table[1].startswith("| low_resource | full | 64 | l | 23.3 / 18.3 | +5.0 [+5.0, +5.0] |")
    assert table[1].endswith("| 0.001 / 0.001 | 3 |")  # each arm's learning rate
    assert "1 ratios, too few for a fit (needs 4)" in text


def test_no_confirm_stage_no_section(tmp_path):
    df = pd.DataFrame({"trial_id": ["a"], "stage": ["search"], "step": [1]})
    assert write_confirm(df, tmp_path, tmp_path) == ([], [])
