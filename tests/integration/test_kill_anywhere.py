"""SIGKILL the driver's process group at 8 moments over the whole life of a micro sweep — zoo build,
teacher finetune, teacher cache, before and after Tune's first snapshot, after the first and the second
of three trials, while the results table is written — each followed by ``mmkd sweep resume``, and once
more to the end:
exactly num_samples trials, no configuration twice, finished trials untouched (also those that finished
after Tune's last snapshot), no repeated (trial, step), each artefact built once."""

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from mmkd.curves.aggregate import trial_states

from .micro import command, env, last_steps, mmkd, sets

pytestmark = pytest.mark.integration

NUM_SAMPLES, MAX_STEPS = 3, 4
SWEEP = sets(
    f"search.num_samples={NUM_SAMPLES}",
    "search.student=[xs, s]",
    "search.adapter_rank=[0, 4]",
    "resources.max_concurrent=1",
    f"train.max_steps={MAX_STEPS}",
    "train.eval_every=2",
    "train.batch_size=8",  # room for the task and the quickstart's translation share
    "task.n_train=32",
    "task.n_dev=2",
    "task.languages=[te]",
    "eval.max_new_tokens=8",
)


def _stage(exp: Path) -> str:
    try:
        return json.loads((exp / "mmkd" / "stage.json").read_text())["stage"]
    except (OSError, ValueError):
        return ""


def _moments(exp: Path, zoo: Path) -> list[tuple[str, Callable[[float], bool]]]:
    """(label, condition on the files given the driver's start time). A micro trial takes about a second
    and Tune may log two reports at once, so the trial moments are counted in finished trials."""
    teachers, cache = exp / "mmkd" / "teachers", exp / "mmkd" / "teacher-cache"
    finetunes = zoo.parent / "teachers"  # $MMKD_CACHE/teachers

    def finished() -> int:
        return sum(s == MAX_STEPS for s in last_steps(exp).values())

    def trials_done(n: int, started: float) -> bool:
        # ... and a report written by this driver, so the kill lands in its search, not its start-up
        fresh = any(p.stat().st_mtime > started for p in exp.glob("*/result.json"))
        return fresh and finished() == n

    return [
        ("zoo build", lambda _: any(zoo.glob(".*.partial"))),
        # The teacher is finetuned in the model cache (resumable from its checkpoints), then copied in.
        ("teacher finetune", lambda _: any(teachers.glob(".*.partial")) or any(finetunes.glob(".*.partial"))),
        (
            "teacher cache",
            lambda _: any(teachers.glob("*/mmkd_teacher.json")) and not any(cache.glob("*.safetensors")),
        ),
        ("before Tune's first snapshot", lambda _: _stage(exp) == "searching" and not _saved(exp)),
        ("after Tune's first snapshot", lambda _: _saved(exp) and finished() == 0),
        ("one trial finished", lambda t0: trials_done(1, t0)),
        ("two trials finished", lambda t0: trials_done(2, t0)),
        ("while the results table is written", lambda _: _stage(exp) == "writing results"),
    ]


def _last_record(exp: Path, trial: str) -> Path:
    """The record of a trial's last report (mmkd.reporting.set_aside): rewritten by any new run of it."""
    return exp / trial / "mmkd_examples" / f"{MAX_STEPS:06d}.metrics.json"


def _saved(exp: Path) -> bool:
    return any(exp.glob("experiment_state-*.json"))


def _kill_when(
    cmd: list[str], retry: list[str], environ: dict[str, str], moment: Callable[[float], bool], log: Path
) -> None:
    """Start ``cmd`` in its own process group, SIGKILL the group at ``moment``. Output goes to a file: a
    pipe nobody reads would fill and stall the driver."""
    for _ in range(3):
        with log.open("w") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=environ, start_new_session=True
            )
            reached = _reached(proc, moment, log)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        if reached:
            return
        if not _ray_failed(log.read_text()):
            break
        cmd = retry
    pytest.fail(f"driver ended (rc {proc.returncode}) before {log.stem}: {log.read_text()[-3000:]}")


# Ray failing under the sweep, not the sweep: on a loaded machine Ray 2.60 gives up starting its local
# node after a fixed 30 s (and may hang after saying so), and a `ray stop` by another job on the machine
# kills every local cluster. The user's answer is the test's: resume.
RAY_FAILURES = ("timed out during startup", "Failed to connect to GCS")


def _ray_failed(text: str) -> bool:
    return any(marker in text for marker in RAY_FAILURES)


def _reached(proc: subprocess.Popen, moment: Callable[[float], bool], log: Path) -> bool:
    started = time.time()
    deadline, checked = started + 600, started
    while not moment(started):
        if proc.poll() is not None:
            return False
        if time.time() - checked > 5:
            checked = time.time()
            if _ray_failed(log.read_text()):
                return False
        assert time.time() < deadline, "the moment never came"
        time.sleep(0.01)
    return True


def _artefacts(exp: Path, zoo: Path) -> dict[str, tuple[int, int]]:
    """Each finished artefact's record → (inode, mtime): a rebuild would change both."""
    records = [
        *zoo.glob("*/mmkd_zoo.json"),
        *(exp / "mmkd" / "teachers").glob("*/mmkd_teacher.json"),
        *(exp / "mmkd" / "teacher-cache").glob("*.safetensors"),
    ]
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in records}


# Ten driver starts (Ray start-up is most of each): minutes on a quiet 2-core machine, more than the
# default 900 s when other jobs share it.
@pytest.mark.timeout(1800)
def test_killed_at_any_moment_the_sweep_resumes_to_the_end(tmp_path):
    environ = env(tmp_path / "cache")
    zoo, exp = tmp_path / "cache" / "zoo", tmp_path / "runs" / "killed"
    first = command("sweep", "run", "quickstart", "--name", "killed", "--storage", str(exp.parent), *SWEEP)
    resume = command("sweep", "resume", str(exp))
    seen: dict[str, tuple[int, int]] = {}
    finished: dict[str, bytes] = {}
    records: dict[str, bytes] = {}
    for i, (label, moment) in enumerate(_moments(exp, zoo)):
        cmd = first if i == 0 else resume
        _kill_when(cmd, resume, environ, moment, tmp_path / f"driver-{i}-{label.replace(' ', '-')}.log")
        for path, record in _artefacts(exp, zoo).items():
            assert seen.setdefault(path, record) == record, f"{path} rebuilt after {label}"
        # Finished trials as Tune's snapshot records them (TERMINATED) keep their result.json. A trial
        # that finished after the last snapshot is restarted by Tune (PENDING or RUNNING there) and ends
        # from its final checkpoint (below), or, unknown to the snapshot, is set aside
        # (mmkd.sweep.recover) and replaced.
        states = trial_states(exp).values()
        known = {s.logdir for s in states if s.status == "TERMINATED"}
        for trial, step in last_steps(exp).items():
            if step == MAX_STEPS and trial in known:
                before = finished.setdefault(trial, (exp / trial / "result.json").read_bytes())
                assert (exp / trial / "result.json").read_bytes() == before, f"{trial} touched by {label}"
        # A trial the snapshot knows as started that finished after it is not trained again either: it
        # ends from its final checkpoint (mmkd.catchup), so its last record is never rewritten.
        for trial in {s.logdir for s in states}:
            if (record := _last_record(exp, trial)).is_file():
                before = records.setdefault(trial, record.read_bytes())
                assert record.read_bytes() == before, f"{trial} trained again after {label}"
        if label == "teacher finetune":
            status = mmkd("sweep", "status", str(exp), env=environ)
            assert "stage: preparing (interrupted" in status.stdout, status.stdout + status.stderr
    for _ in range(3):  # see _kill_when: Ray's fixed start-up timeout on a loaded machine
        resumed = mmkd("sweep", "resume", str(exp), env=environ)
        if not _ray_failed(resumed.stdout + resumed.stderr):
            break
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]

    assert _artefacts(exp, zoo) == seen  # nothing rebuilt by the last resume either
    assert len(list(zoo.glob("*/mmkd_zoo.json"))) == 3  # l, xs, s
    assert len(seen) == 5
    df = pd.read_parquet(exp / "mmkd" / "results.parquet")
    assert df["trial_id"].nunique() == NUM_SAMPLES
    assert not df.duplicated(["trial_id", "step"]).any()
    configs = df.drop_duplicates("trial_id")[["lr", "adapter_rank", "student"]]
    assert not configs.duplicated().any()
    assert (df.groupby("trial_id")["step"].max() == MAX_STEPS).all()
    assert set(df["status"]) == {"TERMINATED"}
    # Where each report's trial started: fresh, or a checkpoint it resumed from (none is damaged here).
    assert df["resumed_from"].fillna("").str.fullmatch(r"|checkpoint_\d+ \(step \d+\)").all()
    for trial, before in finished.items():
        assert (exp / trial / "result.json").read_bytes() == before, trial
    for trial, before in records.items():
        assert _last_record(exp, trial).read_bytes() == before, trial
    assert "stage: done" in mmkd("sweep", "status", str(exp), env=environ).stdout
