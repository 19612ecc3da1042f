"""Interrupt a real sweep (SIGINT, then SIGKILL of the driver) mid-way and resume it to the end:
exactly num_samples trials, no searched config twice, finished trials untouched, no repeated rows."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from mmkd.curves.aggregate import trial_states

from .micro import command, env, last_steps, mmkd, sets

pytestmark = pytest.mark.integration

NUM_SAMPLES, MAX_STEPS = 4, 40
SWEEP = sets(
    f"search.num_samples={NUM_SAMPLES}",
    "search.student=[xs, s]",
    "search.adapter_rank=[0, 4]",
    "resources.max_concurrent=1",
    f"train.max_steps={MAX_STEPS}",
    "train.eval_every=5",
    "train.batch_size=8",
    "task.n_train=64",
    "task.n_dev=3",
    "task.languages=[ru, te]",
    "eval.max_new_tokens=16",
)


def _interrupt_mid_way(exp: Path, proc: subprocess.Popen, sig: int) -> dict[str, bytes]:
    """Wait until one trial has finished and another is part-way, then signal the driver; return the
    result files of the finished trials as they were."""
    deadline = time.time() + 400
    while time.time() < deadline:
        steps = last_steps(exp)
        done = [t for t, s in steps.items() if s == MAX_STEPS]
        if done and any(0 < s < MAX_STEPS for s in steps.values()):
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    else:
        pytest.fail(f"no moment with a finished and a running trial: {last_steps(exp)}")
    finished = {t: (exp / t / "result.json").read_bytes() for t in done}
    os.kill(proc.pid, sig)
    return finished


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_sweep_resumes_to_exactly_num_samples(tmp_path, sig):
    environ = env(tmp_path / "cache")
    exp = tmp_path / "runs" / "resumable"
    cmd = command(
        "sweep", "run", "quickstart", "--name", "resumable", "--storage", str(tmp_path / "runs"), *SWEEP
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
    finished = _interrupt_mid_way(exp, proc, sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert f"mmkd sweep resume {exp}" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    time.sleep(2)
    resumed = mmkd("sweep", "resume", str(exp), env=environ)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]

    df = pd.read_parquet(exp / "mmkd" / "results.parquet")
    assert df["trial_id"].nunique() == NUM_SAMPLES
    assert not df.duplicated(["trial_id", "step"]).any()
    configs = df.drop_duplicates("trial_id")[["lr", "adapter_rank", "student"]]
    assert not configs.duplicated().any()
    assert (df.groupby("trial_id")["step"].max() == MAX_STEPS).all()
    assert set(df["status"]) == {"TERMINATED"}
    for trial, before in finished.items():
        assert (exp / trial / "result.json").read_bytes() == before, trial
    # The Optuna study was resumed too: each trial once, none left running (a trial Tune proposed after its
    # last snapshot and then forgot is marked failed).
    storage = JournalStorage(JournalFileBackend(str(exp / "mmkd" / "optuna.journal")))
    study = optuna.load_study(study_name="resumable", storage=storage)
    complete = [t.user_attrs["trial_id"] for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(df["trial_id"].unique())
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.FAIL}


def _record(exp: Path, trial: str, step: int) -> Path:
    return exp / trial / "mmkd_examples" / f"{step:06d}.metrics.json"


@pytest.mark.parametrize("simulated", [False, True], ids=["trained", "simulated"])
def test_a_trial_that_finished_after_the_last_snapshot_is_not_trained_again(tmp_path, simulated):
    """Tune's snapshot knows the first trial as started, not finished (periodic snapshots off; the
    trials checkpoint at their last step only, so none is forced): on resume it continues from the final
    checkpoint in its folder and re-sends Tune the reports it lost instead of training again. The same
    for the scale simulation's trials (mmkd.sweep.simulate)."""
    environ = {**env(tmp_path / "cache"), "TUNE_GLOBAL_CHECKPOINT_S": "3600"}
    exp = tmp_path / "runs" / "late"
    sweep = [*SWEEP, "--set", "search.num_samples=2", "--set", "train.checkpoint_every_s=3600"]
    if simulated:  # about 2 s a trial
        sweep += ["--set", "simulate.enabled=true", "--set", "simulate.eval_seconds=0.2"]
    cmd = command("sweep", "run", "quickstart", "--name", "late", "--storage", str(exp.parent), *sweep)
    with (tmp_path / "driver.log").open("w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=environ, start_new_session=True
        )
        deadline = time.time() + 600
        while not (
            done := [p.parent.parent.name for p in exp.glob(f"*/mmkd_examples/{MAX_STEPS:06d}.metrics.json")]
        ):
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "driver.log").read_text()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    (first,) = done
    states = {s.logdir: s.status for s in trial_states(exp).values()}
    assert states.get(first) in ("PENDING", "RUNNING"), states  # what this test is about
    record = _record(exp, first, MAX_STEPS).read_bytes()
    checkpoints = sorted(p.name for p in (exp / first).glob("checkpoint_*"))
    assert checkpoints == ["checkpoint_000000"]

    resumed = mmkd("sweep", "resume", str(exp), env=environ)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    # Not trained again: a new run would rewrite the last record (its timings) and checkpoint again.
    assert _record(exp, first, MAX_STEPS).read_bytes() == record
    assert sorted(p.name for p in (exp / first).glob("checkpoint_*")) == checkpoints
    df = pd.read_parquet(exp / "mmkd" / "results.parquet")
    assert df["trial_id"].nunique() == 2
    assert not df.duplicated(["trial_id", "step"]).any()
    rows = df[df["trial_dir"] == first]
    assert rows["step"].tolist() == list(range(5, MAX_STEPS + 1, 5))  # every report Tune had lost
    assert set(rows["status"]) == {"TERMINATED"}
    if not simulated:  # (a simulated trial does not report where it resumed from)
        assert (rows["resumed_from"].fillna("") == "").all()  # as first reported: from step 0
    sent = json.loads(record)["sent"]
    assert rows.iloc[-1]["eval/score"] == sent["eval/score"]
