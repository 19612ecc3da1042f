"""The sweep's persistent Optuna study: user attributes, resume without duplicates, several objectives."""

import math

import optuna
import pytest
from optuna.trial import TrialState

from mmkd import config
from mmkd.sweep.space import Space
from mmkd.sweep.stopping import record_stop
from mmkd.sweep.study import StudySearch, TrialSeededTPE, check_new_study, open_storage, stopped_by

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _search(tmp_path, **kwargs):
    sweep = config.load("quickstart", [f"search.objectives={kwargs.pop('objectives', 'null')}"])
    storage = open_storage(sweep, tmp_path)
    search = StudySearch(Space(sweep), storage=storage, study_name="s", mmkd_dir=tmp_path, **kwargs)
    return search, storage


def _result(score, step=6, **extra):
    return {"eval/score": score, "eval/low_resource/wlr": 0.2, "step": step, "max_steps": 6, **extra}


def _trials(storage):
    return {t.user_attrs["trial_id"]: t for t in optuna.load_study(study_name="s", storage=storage).trials}


def test_trials_carry_tune_ids_pairs_and_how_they_ended(tmp_path):
    search, storage = _search(tmp_path, metric="eval/score", mode="max")
    configs = {tid: search.suggest(tid) for tid in ("a", "b", "c", "d")}
    record_stop(tmp_path / "stopped_by.json", "b", "wlr", 3, 0.95)
    search.on_trial_complete("a", _result(10.0))
    search.on_trial_complete("b", _result(4.0, step=3))
    search.on_trial_complete("c", _result(5.0, step=3))
    search.on_trial_complete("d", error=True)
    trials = _trials(storage)
    assert {k: t.user_attrs["stopped_by"] for k, t in trials.items()} == {
        "a": "max_steps",
        "b": "wlr",
        "c": "asha",
        "d": "error",
    }
    assert [trials[k].state for k in "abcd"] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL]
    assert trials["a"].value == 10.0
    for tid, cfg in configs.items():
        attrs = trials[tid].user_attrs
        assert (attrs["teacher"], attrs["student"], attrs["stage"]) == (
            cfg["teacher"],
            cfg["student"],
            "search",
        )
        assert attrs["ratio"] == pytest.approx(cfg["ratio"])


def _search_seeded(tmp_path):
    sweep = config.load("quickstart", ["search.n_startup_trials=3"])
    tmp_path.mkdir(parents=True, exist_ok=True)
    storage = open_storage(sweep, tmp_path)
    sampler = TrialSeededTPE(sweep.search.seed, n_startup_trials=sweep.search.n_startup_trials)
    space = Space(sweep)
    search = StudySearch(
        space,
        storage=storage,
        study_name="s",
        mmkd_dir=tmp_path,
        sampler=sampler,
        metric="eval/score",
        mode="max",
    )
    return search, storage


def _play(search, events, configs):
    """Suggest (``+id``) and complete (``-id``, its score a function of its configuration) in order."""
    for event in events:
        tid = event[1:]
        if event[0] == "+":
            configs[tid] = search.suggest(tid)
        else:
            cfg = configs[tid]
            search.on_trial_complete(tid, _result(-abs(math.log10(cfg["lr"]) + 3) - cfg["adapter_rank"] / 10))


# Before the snapshot / between it and the crash / after: what the resumed Tune does again (e completes
# once more: Tune never heard it finish), the new trials it asks for (g2, h2 instead of the lost g, h).
BEFORE = "+a +b +c -a +d -b +e -c -d +f".split()
LOST = "+g +h -e".split()
AFTER = "+i -f -g +j -h -i -j +k -k".split()
RESUMED = "-e +g2 +h2 +i -f -g2 +j -h2 -i -j +k -k".split()


def test_a_resume_proposes_what_an_uninterrupted_run_does_each_trial_once(tmp_path):
    whole, _ = _search_seeded(tmp_path / "whole")
    expected: dict = {}
    _play(whole, BEFORE + LOST + AFTER, expected)

    first, storage = _search_seeded(tmp_path / "cut")
    got: dict = {}
    _play(first, BEFORE, got)
    first.save(str(tmp_path / "searcher.pkl"))  # Tune's last snapshot
    _play(first, LOST, got)  # then the driver is killed
    resumed, _ = _search_seeded(tmp_path / "cut")
    resumed.restore(str(tmp_path / "searcher.pkl"))
    _play(resumed, RESUMED, got)

    for tid in "abcdefijk":
        assert got[tid] == expected[tid], tid
    assert got["g2"] == expected["g"] and got["h2"] == expected["h"]  # the lost trials, handed out again
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.user_attrs["trial_id"] for t in trials] == [*"abcdef", "g2", "h2", *"ijk"]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    proposed = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(proposed)) == len(proposed) == 11  # no configuration twice


def test_several_objectives_make_a_multi_objective_study(tmp_path):
    search, storage = _search(
        tmp_path,
        objectives="{eval/score: max, eval/low_resource/wlr: min}",
        metric=["eval/score", "eval/low_resource/wlr"],
        mode=["max", "min"],
    )
    search.suggest("a")
    search.on_trial_complete("a", _result(10.0))
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert study.trials[0].values == [10.0, 0.2]


def test_a_new_sweep_refuses_a_study_name_taken_in_a_shared_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    sweep = config.load("quickstart", [f"search.storage={url}"])
    check_new_study(sweep, "s")
    optuna.create_study(study_name="s", storage=url)
    with pytest.raises(Exception, match="a study named 's' already exists"):
        check_new_study(sweep, "s")


def test_stopped_by_reads_like_the_results_table():
    assert stopped_by({"step": 6, "max_steps": 6, "stopped_by": "custom"}, False, "wlr") == "custom"
    assert stopped_by(None, False, None) == "asha"


def test_a_trial_finished_after_the_snapshot_and_run_again_does_not_stop_the_sweep(tmp_path):
    """Tune runs again a trial that finished after its last snapshot; its study trial is complete in the
    journal, and the rerun's reports must not raise out of the searcher (Tune would end the sweep)."""
    search, storage = _search(tmp_path, metric="eval/score", mode="max")
    search.suggest("a")
    search.save(str(tmp_path / "searcher.pkl"))  # Tune's last snapshot: "a" running, no report yet
    search.on_trial_result("a", {**_result(3.0, step=3), "training_iteration": 1})
    search.on_trial_complete("a", _result(4.0))  # then "a" finishes, and the driver is killed
    resumed, _ = _search(tmp_path, metric="eval/score", mode="max")
    resumed.restore(str(tmp_path / "searcher.pkl"))
    resumed.on_trial_result("a", {**_result(3.5, step=3), "training_iteration": 1})
    resumed.on_trial_complete("a", _result(4.5))
    (trial,) = optuna.load_study(study_name="s", storage=storage).trials
    assert trial.state == TrialState.COMPLETE and trial.value == 4.0  # the first run's result stands
