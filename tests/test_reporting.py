"""One reporting path: what goes to Tune, what to the per-evaluation file, and the table joining them."""

import json
import math

import pytest

from mmkd import config, names, reporting
from mmkd.curves.aggregate import load_results

LANGS = reporting.Languages("en", ("en", "fr", "sw"), ("sw",))


def _report(step=120):
    metrics = {
        "eval/en/chrf": 60.0,
        "eval/fr/chrf": 40.0,
        "eval/sw/chrf": 20.0,
        "eval/en/wlr": 0.0,
        "eval/fr/wlr": 0.2,
        "eval/sw/wlr": math.nan,  # nothing determined: skipped by the means
        "eval/fr/exact": 3.0,
        "eval/sw/exact": 1.0,
        "eval/en/exact": 9.0,
    }
    means = reporting.group_means(
        metrics,
        LANGS.langs,
        source_lang="en",
        low_resource=("sw",),
        low_name="low_resource",
        task_keys=("exact",),
        primary="chrf",
    )
    static = {"teacher": "l", "student": "s", "ratio": 7.2, "max_steps": 240, "trainable_params": 10}
    return reporting.build(
        step, {"loss": 2.0, "token": 0.5}, static, metrics | means, ["fr"], **{"time/eval_s": 1.5}
    )


def test_group_means_and_objective():
    r = _report()
    assert r["eval/zero_shot/chrf"] == 30.0 and r["eval/low_resource/chrf"] == 20.0
    assert r["eval/zero_shot/wlr"] == pytest.approx(0.2)  # sw's NaN is skipped
    assert math.isnan(r["eval/low_resource/wlr"])  # nothing left
    assert r["eval/source/chrf"] == 60.0 and r["eval/source/exact"] == 9.0
    assert r["eval/score"] == r["eval/zero_shot/chrf"]
    assert r["train/loss"] == 2.0 and r["train/loss_token"] == 0.5 and r["unreliable_langs"] == "fr"


def test_tune_gets_what_it_reads_and_the_rest_waits_in_the_evaluation_file(tmp_path):
    sweep = config.load("quickstart", ["stop.wlr={metric: eval/sw/wlr, threshold: 0.9}"])
    keep = reporting.tune_keys(sweep.search, sweep.stop)
    assert keep == {"eval/score", "eval/sw/wlr"}
    report = _report()
    sent = reporting.set_aside(report, tmp_path / reporting.EXAMPLES_DIR, keep)
    assert set(sent) == {
        "step",
        "max_steps",
        "train/loss",
        "eval/score",
        "eval/sw/wlr",  # the stopper's
        *(names.key(g, m) for g in ("zero_shot", "low_resource") for m in ("chrf", "wlr")),
        "eval/source/chrf",
    }
    apart = reporting.read_set_aside(tmp_path, 120)
    assert set(apart) == set(report) - set(sent)
    assert apart["eval/fr/chrf"] == 40.0 and apart["teacher"] == "l" and apart["train/loss_token"] == 0.5
    assert reporting.read_set_aside(tmp_path, 240) == {}  # another step's: none


def test_the_results_table_joins_them_back(tmp_path):
    exp = tmp_path / "exp"
    trial = exp / "s-l-abc"
    keep = frozenset({"eval/score"})
    trial.mkdir(parents=True)
    with (trial / "result.json").open("w") as f:
        for step in (120, 240):
            sent = reporting.set_aside(_report(step), trial / reporting.EXAMPLES_DIR, keep)
            f.write(json.dumps({**sent, "trial_id": "abc", "config": {"lr": 1e-3}}) + "\n")
    (trial / reporting.EXAMPLES_DIR / reporting.metrics_file(240)).unlink()  # not copied yet
    df = load_results(exp).set_index("step")
    assert df.loc[120, "eval/fr/chrf"] == 40.0 and df.loc[120, "teacher"] == "l"
    assert math.isnan(df.loc[240, "eval/fr/chrf"]) and df.loc[240, "eval/score"] == 30.0
    assert df.loc[240, "lr"] == 1e-3  # from Tune's config
    assert list(df["stopped_by"]) == ["max_steps"] * 2
