"""The confirm stage's pick per cell (source dev vs target dev) and its plan."""

import json

import pandas as pd
import pytest

from mmkd import config
from mmkd.config import ConfirmConfig
from mmkd.errors import UserInputError
from mmkd.sweep.confirm import ensure_plan, make_plan, select, selection_metric


def trial(trial_id, lr, source, target, *, method="mmkd", student="xs", step=6, status="TERMINATED"):
    return {
        "trial_id": trial_id,
        "trial_dir": f"t_{trial_id}",
        "status": status,
        "stage": "search",
        "step": step,
        "max_steps": 6,
        "student": student,
        "teacher": "l",
        "teacher_params": 1000,
        "student_params": 10,
        "ratio": 100.0,
        "ratio_total": 40.0,
        "adapter_rank": 0,
        "method": method,
        "lr": lr,
        "distill.token": 0.5,
        "eval/source/chrf": source,
        "eval/score": target,
    }


# One cell (xs, l, full, mmkd): trial b is best on English dev, trial c on the zero-shot objective.
SEARCH = pd.DataFrame(
    [
        trial("a", 1e-4, 40.0, 10.0),
        trial("b", 1e-3, 70.0, 12.0),
        trial("c", 1e-2, 55.0, 20.0),
        # Stopped early: the best on both, but a pick is retrained to the end, so a full run comes first.
        trial("d", 3e-3, 90.0, 30.0, step=3),
        # Errored: never picked.
        trial("e", 2e-3, 99.0, 40.0, status="ERROR"),
        # The control's own cell, and a confirm-stage row that must not count as a search trial.
        trial("n", 1e-3, 60.0, 5.0, method="none"),
        {**trial("z", 1e-3, 100.0, 100.0), "stage": "confirm"},
    ]
)


def test_source_selection_picks_on_english_dev_and_target_on_the_objective():
    by_source = select(SEARCH, "eval/source/chrf").set_index("method")
    by_target = select(SEARCH, "eval/score").set_index("method")
    assert by_source.loc["mmkd", "trial_id"] == "b"
    assert by_target.loc["mmkd", "trial_id"] == "c"
    assert by_source.loc["none", "trial_id"] == by_target.loc["none", "trial_id"] == "n"


def test_selection_reads_each_trials_last_evaluation_and_breaks_ties_by_lr():
    earlier = {**trial("c", 1e-2, 99.0, 99.0), "step": 3}  # c's earlier, better evaluation: not its last
    tie = trial("f", 1e-5, 70.0, 0.0)  # ties b on English dev with a smaller learning rate
    picked = select(pd.concat([SEARCH, pd.DataFrame([earlier, tie])]), "eval/source/chrf")
    assert picked.set_index("method").loc["mmkd", "trial_id"] == "f"
    by_target = select(pd.concat([SEARCH, pd.DataFrame([earlier])]), "eval/score").set_index("method")
    assert by_target.loc["mmkd", "trial_id"] == "c"


def test_plan_repeats_each_pick_with_every_seed():
    plan = make_plan(select(SEARCH, "eval/source/chrf"), [1, 2, 3], "eval/source/chrf")
    assert [(p["selected_from"], p["seed"]) for p in plan] == [(t, s) for t in ("b", "n") for s in (1, 2, 3)]
    first = plan[0]
    assert first["stage"] == "confirm" and first["method"] == "mmkd" and first["lr"] == 1e-3
    assert first["distill.token"] == 0.5 and first["ratio"] == 100.0 and first["ratio_total"] == 40.0
    assert first["selected_value"] == 70.0
    json.dumps(plan)  # plain JSON types: the plan is stored and passed to Ray


def test_selection_metric_follows_the_tasks_primary_metric():
    sweep = config.load("quickstart")
    assert selection_metric(sweep, "source") == "eval/source/chrf"
    assert selection_metric(sweep, "target") == "eval/score"


def test_a_stored_plan_is_reused_and_a_different_request_refused(tmp_path):
    sweep = config.load("quickstart", ["train.seed=4"])
    (tmp_path / "mmkd").mkdir()
    stored = {"select_on": "source", "metric": "eval/source/chrf", "seeds": [5, 6], "trials": [{"x": 1}]}
    (tmp_path / "mmkd" / "confirm_plan.json").write_text(json.dumps(stored))
    assert ensure_plan(tmp_path, sweep, ConfirmConfig(seeds=2)) == [{"x": 1}]
    with pytest.raises(UserInputError, match=r"planned with seeds \[5, 6\]"):
        ensure_plan(tmp_path, sweep, ConfirmConfig(seeds=3))
