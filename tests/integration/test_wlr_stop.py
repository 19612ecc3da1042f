"""A deliberately too-high learning rate drives a real micro-sweep into English; the WLR rule stops it."""

import json

import pandas as pd
import pytest

from .micro import env, mmkd, sets

pytestmark = pytest.mark.integration

RECKLESS = sets(
    "search.num_samples=1",
    "search.lr=0.02",
    "search.student=[s]",
    "search.adapter_rank=[0]",
    "train.max_steps=90",
    "train.eval_every=15",
    "train.batch_size=16",
    "task.n_train=200",
    "task.n_dev=6",
    "task.languages=[ru, hi, te, ta]",
    "eval.max_new_tokens=40",
    "stop.wlr={metric: eval/zero_shot/wlr, threshold: 0.5, grace_evals: 1, mode: absolute}",
    "train.checkpoint_every_s=3600",  # no checkpoint before the last step, which it never reaches
)


def test_too_high_learning_rate_is_stopped_for_wrong_language(tmp_path):
    done = mmkd(
        "sweep",
        "run",
        "quickstart",
        "--name",
        "reckless",
        "--storage",
        str(tmp_path),
        *RECKLESS,
        env=env(tmp_path / "cache"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    df = pd.read_parquet(tmp_path / "reckless" / "mmkd" / "results.parquet")
    last = df.iloc[-1]
    shown = df[["step", "eval/zero_shot/wlr", "eval/en/chrf", "stopped_by"]].to_string()
    assert last["stopped_by"] == "wlr", shown
    assert 15 < last["step"] < 90, shown  # after the grace evaluation, before the end
    assert last["eval/zero_shot/wlr"] > 0.5
    stops = json.loads((tmp_path / "reckless" / "mmkd" / "stopped_by.json").read_text())
    assert stops[last["trial_id"]]["reason"] == "wlr"
    assert "wlr" in done.stdout  # the best-trials table shows why it stopped
    # The evaluation that stopped it had no checkpoint, yet its per-example rows reached the storage.
    trial = tmp_path / "reckless" / last["trial_dir"]
    assert not list(trial.glob("checkpoint_*"))
    rows = (trial / "mmkd_examples" / f"{last['step']:06d}.jsonl").read_text().splitlines()
    assert len(rows) == 5 * 6 and {json.loads(r)["step"] for r in rows} == {last["step"]}
