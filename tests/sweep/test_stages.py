"""What `mmkd sweep status` says of a sweep interrupted at each stage, and what `run` and `resume` make
of the folder an interrupted sweep left (no Ray needed)."""

import json
import os
import subprocess
import sys

import pytest

from mmkd import config
from mmkd.errors import UserInputError
from mmkd.sweep import recover, runner, stages


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
    assert lines[0].endswith(f"0/{config.load('quickstart').search.num_samples} trials (none started)")
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
    _trial(exp, "tune_trial_a_00000")
    (exp.path / "tuner.pkl").write_bytes(b"x")  # Tune's tuner state, but no snapshot yet
    assert recover.prepare_restore(exp.path, can_restore=True) is False
    assert sorted(p.name for p in exp.path.iterdir()) == ["mmkd"]
    (aside,) = exp.mmkd.glob("set-aside-*")
    assert (aside / "tune_trial_a_00000" / "result.json").is_file() and (aside / "tuner.pkl").is_file()
    assert "search starts afresh under the same name" in capsys.readouterr().err
    assert not list(exp.path.glob("*/result.json"))  # the results table no longer sees that trial


def _trial(exp, name):
    (exp.path / name).mkdir()
    (exp.path / name / "result.json").write_text(json.dumps({"trial_id": name, "step": 2}) + "\n")


def _snapshot(exp, when, trials):
    data = [[json.dumps({"trial_id": t, "status": "RUNNING", "relative_logdir": t}), "{}"] for t in trials]
    path = exp.path / f"experiment_state-{when}.json"
    path.write_text(json.dumps({"trial_data": data}))
    return path


def test_a_cut_short_snapshot_and_trials_it_does_not_know_are_set_aside(tmp_path, capsys):
    exp = _sweep_dir(tmp_path)
    for name in ("t1", "t2", "t3"):
        _trial(exp, name)
    _snapshot(exp, "2026-01-01_10-00-00", ["t1"])  # an older session's snapshot
    newest = _snapshot(exp, "2026-01-01_11-00-00", ["t1", "t2", "t3"])
    newest.write_text(newest.read_text()[:40])  # the kill cut its copy short
    assert recover.prepare_restore(exp.path, can_restore=True) is True
    assert sorted(p.parent.name for p in exp.path.glob("*/result.json")) == ["t1"]
    aside = {p.name for p in exp.mmkd.glob("set-aside-*/*")}
    assert aside == {newest.name, "t2", "t3"}
    err = capsys.readouterr().err
    assert "cut short" in err and "started after Tune's last snapshot" in err


def test_a_sound_snapshot_leaves_everything_in_place(tmp_path, capsys):
    exp = _sweep_dir(tmp_path)
    for name in ("t1", "t2"):
        _trial(exp, name)
    _snapshot(exp, "2026-01-01_10-00-00", ["t1", "t2"])
    before = sorted(p.name for p in exp.path.iterdir())
    assert recover.prepare_restore(exp.path, can_restore=True) is True
    assert sorted(p.name for p in exp.path.iterdir()) == before
    assert capsys.readouterr().err == ""


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
