"""Interrupt a real sweep (SIGINT, then SIGKILL of the driver) mid-way and resume it to the end:
exactly num_samples trials, no searched config twice, finished trials untouched, no repeated rows."""

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
