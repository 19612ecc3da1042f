"""The quickstart, measured: cold (zoo built) and warm (zoo cached) wall time, and what it learned.

    python benchmarks/quickstart.py [--storage DIR] [--skip-cold]

Runs `mmkd sweep run sweeps/quickstart.yaml` with an empty model cache (cold), then again with the
cache it filled (warm), and reports: wall times, the best trial's English dev chrF against the same
student before finetuning (the pretrained zoo model), the spread of zero-shot WLR across trials, how many
trials were stopped for WLR, and the share of trial time spent in evaluation. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
from common import run_quickstart


def untrained_source_chrf(student: str, cache: Path) -> float:
    """English dev chrF of the pretrained student with no finetuning (the zoo model as built)."""
    os.environ["MMKD_CACHE"] = str(cache)
    from mmkd.config import load
    from mmkd.data import get_task
    from mmkd.eval.langid import get_langid
    from mmkd.models import load_seq2seq
    from mmkd.models.zoo import ZooSettings, find_built
    from mmkd.trial import evaluate

    cfg = load("quickstart", ["task.languages=[fr]"])
    path = find_built(student, ZooSettings(**cfg.family.zoo.model_dump()))
    assert path is not None, "the zoo was not built"
    model, tok = load_seq2seq(path)
    task = get_task(cfg.task.name, **cfg.task_options())
    dev = {"en": task.examples("dev", "en")}
    return evaluate(model, tok, task, dev, cfg, get_langid()).metrics["eval/en/chrf"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--storage", type=Path, default=None)
    ap.add_argument("--skip-cold", action="store_true", help="only the warm run (the cache must exist)")
    args = ap.parse_args()
    root = args.storage or Path(tempfile.mkdtemp(prefix="mmkd-qs-"))
    cache = root / "cache"
    out: dict[str, object] = {}
    if not args.skip_cold:
        out["quickstart_cold_s"] = run_quickstart("cold", root / "runs", cache=cache)
    out["quickstart_warm_s"] = run_quickstart("warm", root / "runs", cache=cache)
    df = pd.read_parquet(root / "runs" / "warm" / "mmkd" / "results.parquet")
    final = df.sort_values("step").groupby("trial_id").tail(1)
    best = final.sort_values("eval/score", ascending=False).iloc[0]
    evals = df["time/eval_s"].sum()
    train = (df["time/train_step_s"] * df.groupby("trial_id")["step"].diff().fillna(df["step"])).sum()
    out.update(
        {
            "trials": int(final["trial_id"].nunique()),
            "best_trial": {
                k: (v.item() if hasattr(v, "item") else v)
                for k, v in best[
                    ["student", "lr", "adapter_rank", "eval/source/chrf", "eval/score", "eval/zero_shot/wlr"]
                ].items()
            },
            "best_source_chrf": float(best["eval/source/chrf"]),
            "untrained_source_chrf": untrained_source_chrf(str(best["student"]), cache),
            "zero_shot_wlr_min": float(final["eval/zero_shot/wlr"].min()),
            "zero_shot_wlr_max": float(final["eval/zero_shot/wlr"].max()),
            "stopped_for_wlr": int((final["stopped_by"] == "wlr").sum()),
            "eval_share": float(evals / (evals + train)),
            "seconds_per_step": {s: float(g["time/train_step_s"].median()) for s, g in df.groupby("student")},
        }
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
