"""The sweep's persistent Optuna study: user attributes, resume without duplicates, several objectives."""

import optuna
import pytest
from optuna.trial import TrialState

from mmkd import config
from mmkd.sweep.space import Space
from mmkd.sweep.stopping import record_stop
from mmkd.sweep.study import StudySearch, check_new_study, open_storage, stopped_by

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


def test_restore_fails_the_trials_asked_after_the_saved_state(tmp_path):
    search, storage = _search(tmp_path, metric="eval/score", mode="max")
    search.suggest("a")
    search.suggest("b")
    search.on_trial_complete("a", _result(10.0))
    search.save(str(tmp_path / "searcher.pkl"))
    search.suggest("lost")  # asked after the last snapshot: the resumed Tune never hears of it
    restored, _ = _search(tmp_path, metric="eval/score", mode="max")
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert _trials(storage)["lost"].state == TrialState.FAIL
    assert _trials(storage)["b"].state == TrialState.RUNNING  # Tune resumes it
    restored.on_trial_complete("b", _result(7.0))
    restored.suggest("c")
    states = {k: t.state for k, t in _trials(storage).items()}
    assert states == {
        "a": TrialState.COMPLETE,
        "b": TrialState.COMPLETE,
        "lost": TrialState.FAIL,
        "c": TrialState.RUNNING,
    }
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 4  # each trial once


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
