"""A deliberately too-high learning rate drives a real micro-sweep into English; the WLR rule stops it."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.integration

RECKLESS = [
    "--set",
    "search.num_samples=1",
    "--set",
    "search.lr=0.02",
    "--set",
    "search.student=[s]",
    "--set",
    "search.adapter_rank=[0]",
    "--set",
    "family.zoo.steps=20",
    "--set",
    "family.zoo.corpus_lines=100",
    "--set",
    "teacher.steps=20",
    "--set",
    "train.max_steps=60",
    "--set",
    "train.eval_every=15",
    "--set",
    "train.batch_size=16",
    "--set",
    "task.n_train=200",
    "--set",
    "task.n_dev=6",
    "--set",
    "task.languages=[ru, hi, te, ta]",
    "--set",
    "eval.max_new_tokens=40",
    "--set",
    "stop.wlr={metric: eval/zero_shot/wlr, threshold: 0.5, grace_evals: 1, mode: absolute}",
]


def test_too_high_learning_rate_is_stopped_for_wrong_language(tmp_path):
    env = {**os.environ, "MMKD_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmkd.cli",
            "sweep",
            "run",
            "quickstart",
            "--name",
            "reckless",
            "--storage",
            str(tmp_path),
            *RECKLESS,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    df = pd.read_csv(tmp_path / "reckless" / "mmkd" / "results.csv")
    last = df.iloc[-1]
    assert last["stopped_by"] == "wlr"
    assert 15 < last["step"] < 60  # after the grace evaluation, before the end
    assert last["eval/zero_shot/wlr"] > 0.5
    stops = json.loads((tmp_path / "reckless" / "mmkd" / "stopped_by.json").read_text())
    assert stops[last["trial_id"]]["reason"] == "wlr"
    assert "wlr" in done.stdout  # the best-trials table shows why it stopped
