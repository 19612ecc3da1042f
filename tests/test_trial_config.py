"""The typed trial config: built in one place from the searched values, the sweep and its artefacts."""

from pathlib import Path

import pytest

from mmkd.config import Artefacts, TrialConfig, load
from mmkd.distill.teacher import teacher_dir

PAIR = {"teacher": "l", "student": "s", "teacher_params": 8, "student_params": 2, "ratio": 3.5}
ARTEFACTS = Artefacts(models={"s": "/m/s"}, teachers={"l": "/t/l"}, teacher_cache={"l": "/c/l"})


def test_a_trial_takes_the_sweeps_values_unless_searched():
    sweep = load("quickstart", ["train.aux_translation=0.25"])
    trial = TrialConfig.build({"lr": 1e-3, "adapter_rank": 8, **PAIR}, sweep, ARTEFACTS)
    assert (trial.method, trial.stage, trial.aux_translation, trial.ratio_total) == (
        "mmkd",
        "search",
        0.25,
        3.5,
    )
    assert (trial.student_model, trial.teacher_model, trial.teacher_cache) == ("/m/s", "/t/l", "/c/l")
    assert trial.distill == sweep.distill and trial.train == sweep.train
    searched = {"lr": 1e-3, "adapter_rank": 0, **PAIR, "aux_translation": 0.5, "distill.token": 0.3}
    trial = TrialConfig.build({**searched, "method": "token", "ratio_total": 3.0}, sweep, ARTEFACTS)
    assert (trial.aux_translation, trial.distill.token, trial.distill.word, trial.ratio_total) == (
        0.5,
        0.3,
        0,
        3.0,
    )
    with pytest.raises(AttributeError):
        trial.lr = 1.0  # type: ignore[misc]  # frozen


def test_a_confirm_entry_replaces_the_seed_and_no_cache_means_a_live_teacher():
    sweep = load("quickstart", ["distill.cache=false"])
    trial = TrialConfig.build(
        {"lr": 1e-3, "adapter_rank": 0, **PAIR, "seed": 7, "stage": "confirm"}, sweep, ARTEFACTS
    )
    assert trial.train.seed == trial.sweep.train.seed == 7 and sweep.train.seed == 0
    assert trial.teacher_cache is None and trial.teacher_model == "/t/l" and trial.stage == "confirm"


def test_a_teacher_finetune_is_the_task_loss_alone_and_its_hash_ignores_the_checkpoint_cadence():
    sweep = load("quickstart")
    finetune = TrialConfig.teacher_finetune(sweep, "/base")
    assert finetune.method == "none" and finetune.teacher_model is None and not finetune.evaluates
    assert (finetune.train.max_steps, finetune.train.batch_size, finetune.lr) == (600, 32, 3e-4)
    assert finetune.aux_translation == 0.75 and finetune.train.weight_decay == 0.01  # AdamW's, as always
    assert finetune.distill.task == 1 and finetune.distill.token == finetune.distill.word == 0
    # The settings hashed are those hashed before checkpoint_every and weight_decay were settings.
    assert set(sweep.teacher.content()) == {"steps", "lr", "batch_size", "aux_translation"}
    name = teacher_dir(Path("/r"), "l", "/base", sweep).name
    assert (
        teacher_dir(Path("/r"), "l", "/base", load("quickstart", ["teacher.checkpoint_every=7"])).name == name
    )
    assert teacher_dir(Path("/r"), "l", "/base", load("quickstart", ["teacher.weight_decay=0"])).name != name
