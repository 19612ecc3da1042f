"""A real micro sweep with the control arm and a confirm stage, killed (SIGKILL of the driver) during the
confirm stage and resumed: the stage ends with exactly its planned trials, on the test split, and the
curves write confirm.csv and gain.csv."""

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest

from .micro import command, env, last_steps, mmkd, sets

pytestmark = pytest.mark.integration

MAX_STEPS = 40
SWEEP = sets(
    "search.num_samples=2",
    "search.grid=true",
    "search.method=[none, mmkd]",
    "search.student=[xs]",
    "search.adapter_rank=[0]",
    "confirm.seeds=2",
    "resources.max_concurrent=1",
    f"train.max_steps={MAX_STEPS}",
    "train.eval_every=10",
    "train.batch_size=8",
    "task.n_train=64",
    "task.n_dev=3",
    "task.n_test=4",
    "task.languages=[ru, te]",
    "eval.max_new_tokens=16",
)


def test_confirm_stage_survives_a_killed_driver_and_gives_the_gain(tmp_path):
    environ = env(tmp_path / "cache")
    exp = tmp_path / "runs" / "confirmed"
    cmd = command(
        "sweep", "run", "quickstart", "--name", "confirmed", "--storage", str(tmp_path / "runs"), *SWEEP
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
    deadline = time.time() + 1500
    while time.time() < deadline:  # one confirm trial finished, another part-way: kill the driver
        steps = last_steps(exp / "confirm")
        if MAX_STEPS in steps.values() and any(0 < s < MAX_STEPS for s in steps.values()):
            break
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    else:
        pytest.fail(f"no moment with a finished and a running confirm trial: {last_steps(exp / 'confirm')}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    time.sleep(2)
    resumed = mmkd("sweep", "resume", str(exp), env=environ, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]

    plan = json.loads((exp / "mmkd" / "confirm_plan.json").read_text())
    assert plan["metric"] == "eval/source/chrf" and plan["seeds"] == [1, 2]
    df = pd.read_parquet(exp / "mmkd" / "results.parquet")
    assert not df.duplicated(["trial_id", "step"]).any()
    search, confirm = df[df["stage"] == "search"], df[df["stage"] == "confirm"]
    assert search["trial_id"].nunique() == 2 and set(search["method"]) == {"none", "mmkd"}
    assert confirm["trial_id"].nunique() == 4 == len(plan["trials"])
    last = confirm.sort_values("step").groupby("trial_id").tail(1)
    assert (last["step"] == MAX_STEPS).all() and set(last["status"]) == {"TERMINATED"}
    assert sorted(zip(last["method"], last["seed"], strict=True)) == [
        ("mmkd", 1),
        ("mmkd", 2),
        ("none", 1),
        ("none", 2),
    ]
    picks = {t["method"]: t["lr"] for t in plan["trials"]}
    assert {m: lr for m, lr in zip(last["method"], last["lr"], strict=True)} == picks
    for column in ("test/ru/chrf", "test/zero_shot/chrf", "test/low_resource/chrf", "test/score"):
        assert last[column].notna().all(), column
    # WLR is NaN when nothing a barely trained student wrote was identified: present, maybe empty.
    assert {"test/te/wlr", "test/low_resource/wlr", "test/te/undetermined"} <= set(last.columns)
    assert confirm.loc[confirm["step"] < MAX_STEPS, "test/score"].isna().all()  # test only at the end
    for trial_dir in last["trial_dir"]:
        rows = [
            json.loads(line)
            for line in (exp / trial_dir / "mmkd_examples" / f"test-{MAX_STEPS:06d}.jsonl").open()
        ]
        assert len(rows) == 3 * 4 and {r["lang"] for r in rows} == {"en", "ru", "te"}

    curves = mmkd("curves", str(exp), env=environ)
    assert curves.returncode == 0, curves.stderr[-3000:]
    out = exp / "mmkd" / "curves"
    table = pd.read_csv(out / "confirm.csv")
    assert sorted(table["method"]) == ["mmkd", "none"] and (table["n_seeds"] == 2).all()
    gain = pd.read_csv(out / "gain.csv")
    row = gain[(gain["group"] == "low_resource") & (gain["metric"] == "chrf")].iloc[0]
    assert row["gain"] == pytest.approx(row["value"] - row["control"])
    assert row["ci_low"] <= row["gain"] <= row["ci_high"]
    report = (out / "report.md").read_text()
    assert report.index("## MMKD gain vs teacher/student ratio") < report.index(
        "## Best learning rate per cell"
    )
