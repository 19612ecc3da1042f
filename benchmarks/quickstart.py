"""The quickstart, measured: cold (zoo built) and warm (zoo cached) wall time, and what it learned.

    python benchmarks/quickstart.py [--storage DIR] [--skip-cold]

Runs `mmkd sweep run quickstart` with an empty model cache (cold), then again with the
cache it filled (warm), and reports: wall times, the best trial's English dev chrF against the same
student before finetuning (the pretrained zoo model), the spread of zero-shot WLR across trials, how many
trials were stopped for WLR, and the share of trial time spent in evaluation. Then, on the now quiet
machine, it evaluates the last checkpoint of the largest fully finetuned student again and splits that
evaluation's time: the model's forward passes (encoder, decoder steps) against the rest (HF generate's
loop, tokenization, LID, metrics). Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import run_quickstart


def untrained_source_chrf(student: str, cache: Path) -> float:
    """English dev chrF of the pretrained student with no finetuning (the zoo model as built)."""
    os.environ["MMKD_CACHE"] = str(cache)
    from mmkd.config import load
    from mmkd.data import get_task
    from mmkd.eval.evaluate import evaluate_model as evaluate
    from mmkd.eval.langid import get_langid
    from mmkd.models import load_seq2seq
    from mmkd.models.zoo import ensure_built

    cfg = load("quickstart", ["task.languages=[fr]"])
    model, tok = load_seq2seq(ensure_built(student, cfg.family.zoo))
    task = get_task(cfg.task.name, **cfg.task_options())
    dev = {"en": task.examples("dev", "en")}
    return evaluate(model, tok, task, dev, cfg, get_langid()).metrics["eval/en/chrf"]


def evaluation_split(df: pd.DataFrame, runs: Path, cache: Path) -> dict[str, object]:
    """Where one evaluation's time goes, on one quiet core, for the last checkpoint of the largest fully
    finetuned student of the run (its outputs have the lengths the sweep decoded); {} if there is none."""
    os.environ["MMKD_CACHE"] = str(cache)
    import torch

    from mmkd import checkpoint
    from mmkd.config import load
    from mmkd.data import get_task
    from mmkd.eval.evaluate import evaluate_model as evaluate
    from mmkd.eval.langid import get_langid
    from mmkd.models import load_seq2seq
    from mmkd.models.zoo import ensure_built
    from mmkd.trial import CHECKPOINT_DIR

    full = df[(df["adapter_rank"] == 0) & df["checkpoint_dir_name"].notna()]
    if full.empty:
        return {}
    row = full.sort_values(["student_params", "step"]).iloc[-1]
    cfg = load("quickstart")
    model, tok = load_seq2seq(ensure_built(str(row["student"]), cfg.family.zoo))
    checkpoint.load_weights(
        runs / row["trial_dir"] / row["checkpoint_dir_name"] / CHECKPOINT_DIR, {"student": model}
    )
    torch.set_num_threads(1)  # as in the sweep: one CPU per trial
    task = get_task(cfg.task.name, **cfg.task_options())
    dev = {lang: task.examples("dev", lang) for lang in task.languages}  # as the trial builds it
    langid = get_langid(cfg.eval.langid)

    forward = {"s": 0.0, "decoder_calls": 0}
    started: list[float] = []

    def pre(module: object, args: object) -> None:
        started.append(time.perf_counter())

    def post(module: object, args: object, output: object) -> None:
        forward["s"] += time.perf_counter() - started.pop()
        forward["decoder_calls"] += module is model.decoder

    for part in (model.encoder, model.decoder):
        part.register_forward_pre_hook(pre)
        part.register_forward_hook(post)
    evaluate(model, tok, task, dev, cfg, langid)  # warm-up
    splits = []
    for _ in range(3):
        forward.update(s=0.0, decoder_calls=0)
        begin = time.perf_counter()
        evaluate(model, tok, task, dev, cfg, langid)
        total = time.perf_counter() - begin
        splits.append((total, forward["s"] / total))
    total, fraction = sorted(splits)[1]  # the median run
    return {
        "student": str(row["student"]),
        "step": int(row["step"]),
        "eval_s": total,
        "decoder_steps": int(forward["decoder_calls"]),
        "forward_fraction": fraction,
    }


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
    split = evaluation_split(df, root / "runs" / "warm", cache)
    if split:
        # The share evaluation would keep if everything but the forward passes took no time at all: the
        # floor that a faster generate loop, LID or metrics cannot go below.
        share, fraction = float(out["eval_share"]), float(split["forward_fraction"])  # type: ignore[arg-type]
        out["eval_share_forward_only"] = share * fraction / (1 - share + share * fraction)
        out["eval_split"] = split
    print(json.dumps(out))


if __name__ == "__main__":
    main()
