"""What `mmkd sweep status` says of a sweep interrupted at each stage, and what `run` and `resume` make
of the folder an interrupted sweep left (no Ray needed)."""

import json
import os
import subprocess
import sys

import pytest

from mmkd import config
from mmkd.errors import UserInputError
from mmkd.sweep import runner, stages


def _sweep_dir(tmp_path, stage=None, pid=None):
    exp = runner.Experiment(tmp_path, "s")
    exp.mmkd.mkdir(parents=True)
    (exp.mmkd / runner.CONFIG_FILE).write_text(config.dump(config.load("quickstart")))
    if stage is not None:
        stages.mark(exp.mmkd, stage)
        if pid is not None:
            record = json.loads((exp.mmkd / stages.STAGE_FILE).read_text())
            (exp.mmkd / stages.STAGE_FILE).write_text(json.dumps({**record, "pid": pid}))
    return exp


def _dead_pid():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    return int(proc.stdout)


def test_status_of_a_sweep_killed_while_preparing(tmp_path):
    exp = _sweep_dir(tmp_path, stages.PREPARING, pid=_dead_pid())
    teacher = exp.mmkd / "teachers" / "l-abc"
    teacher.mkdir(parents=True)
    (teacher / "mmkd_teacher.json").write_text("{}")
    out = runner.status(str(exp.path))
    lines = out.splitlines()
    assert lines[0].endswith("0/8 trials (none started)")
    assert lines[1] == (
        "stage: preparing (interrupted; teachers finetuned 1/1; teacher caches written 0/1); "
        f"resume with: mmkd sweep resume {exp.path}"
    )


def test_status_of_a_running_and_of_a_finished_sweep(tmp_path):
    exp = _sweep_dir(tmp_path, stages.SEARCHING)  # recorded by this (live) process
    assert f"stage: searching (running, pid {os.getpid()})" in runner.status(str(exp.path))
    stages.mark(exp.mmkd, stages.DONE)
    assert "\nstage: done\n" in runner.status(str(exp.path))
    (exp.mmkd / stages.STAGE_FILE).unlink()
    assert "stage: unknown" in runner.status(str(exp.path))


def test_run_refuses_a_recorded_sweep_and_a_foreign_folder_but_not_an_unrecorded_one(tmp_path):
    exp = _sweep_dir(tmp_path)
    with pytest.raises(UserInputError, match="mmkd sweep resume"):
        runner._refuse_existing(exp)
    (exp.mmkd / runner.CONFIG_FILE).unlink()  # killed before its config was written: nothing recorded
    runner._refuse_existing(exp)
    (exp.path / "something").write_text("x")
    with pytest.raises(UserInputError, match="not an mmkd sweep"):
        runner._refuse_existing(exp)


def test_an_unsaved_tune_run_is_set_aside_whole(tmp_path, capsys):
    exp = _sweep_dir(tmp_path)
    trial = exp.path / "tune_trial_a_00000"
    trial.mkdir()
    (trial / "result.json").write_text('{"step": 1}\n')
    (exp.path / "tuner.pkl").write_bytes(b"x")
    runner._set_aside_unsaved_run(exp)
    assert sorted(p.name for p in exp.path.iterdir()) == ["mmkd"]
    (aside,) = exp.mmkd.glob("unsaved-*")
    assert (aside / "tune_trial_a_00000" / "result.json").is_file() and (aside / "tuner.pkl").is_file()
    assert "starts afresh under the same name" in capsys.readouterr().err
    assert not list(exp.path.glob("*/result.json"))  # the results table no longer sees that trial


def test_a_half_written_results_table_is_rebuilt_from_the_trials(tmp_path):
    exp = _sweep_dir(tmp_path, stages.DONE)
    for trial in ("t_00000", "t_00001"):
        (exp.path / trial).mkdir()
        rows = [{"trial_id": trial, "step": s, "eval/score": s / 10, "max_steps": 4} for s in (2, 4)]
        (exp.path / trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner.write_results(exp)
    csv, parquet = exp.mmkd / "results.csv", exp.mmkd / "results.parquet"
    whole = csv.read_bytes(), parquet.read_bytes()
    csv.write_bytes(whole[0][:100])  # a copy cut short, as a full disk or a kill mid-copy leaves it
    parquet.write_bytes(whole[1][:100])
    runner.write_results(exp)  # what every resume does at its end: the table comes from the trial files
    assert (csv.read_bytes(), parquet.read_bytes()) == whole
    assert not [p for p in exp.mmkd.iterdir() if p.name.endswith(".tmp")]
