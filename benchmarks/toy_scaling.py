"""The toy scaling study, measured: cold wall time of the whole design and the gain it finds.

    python benchmarks/toy_scaling.py [--storage DIR] [--set a.b=v ...]

Runs `mmkd sweep run toy_scaling` (mmkd/sweeps/toy_scaling.yaml: 2 students x 3 teachers x {none, mmkd} x
{full, LoRA}, a search stage and a 3-seed confirm stage) with an empty model cache, so the tiny zoo and
the teachers are built too (goal: <= 45 min on 2 cores), then `mmkd curves`. Prints one JSON line:
``cold_s``, the trials of each stage, the confirmed ``cells``, the ``ratios`` each student met, the
``seeds`` per cell, and per student and adapter setting the chrF gain of MMKD over no distillation at
each ratio with its 95% interval (``gain.csv``; low-resource and all zero-shot languages).
Next to them, the trivial baselines on dev (copy the input, answer with the English reference, each
teacher: ``baselines``) and each control's absolute test chrF (``control_test_chrf``).
``--set`` overrides reach the sweep (a smoke run: ``--set search.num_samples=24 --set train.max_steps=4``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from common import run_quickstart

from mmkd.eval.baselines import read_baselines

GOAL_S = 45 * 60


def gains(gain: pd.DataFrame, group: str) -> dict[str, dict[str, list[dict[str, float]]]]:
    """student → adapter → [{ratio, gain, ci_low, ci_high}] for MMKD's chrF gain in ``group``."""
    rows = gain[(gain["method"] == "mmkd") & (gain["metric"] == "chrf") & (gain["group"] == group)]
    out: dict[str, dict[str, list[dict[str, float]]]] = {}
    for r in rows.sort_values(["student_params", "adapter_rank", "ratio"]).itertuples(index=False):
        out.setdefault(str(r.student), {}).setdefault(str(r.adapter), []).append(
            {
                "ratio": round(float(r.ratio), 2),
                "gain": round(float(r.gain), 2),
                "ci_low": round(float(r.ci_low), 2),
                "ci_high": round(float(r.ci_high), 2),
            }
        )
    return out


def levels(baselines: pd.DataFrame | None, confirm: pd.DataFrame) -> dict[str, object]:
    """What the gains sit on: the dev baselines and the controls' test chrF (low-resource, zero-shot)."""
    groups = ("low_resource", "zero_shot")
    out: dict[str, object] = {}
    if baselines is not None:
        out["baselines"] = {
            str(r["baseline"]): {g: round(float(r[f"eval/{g}/chrf"]), 2) for g in groups}
            for _, r in baselines.iterrows()
        }
    out["control_test_chrf"] = {
        f"{r['student']}/{r['adapter']}": {g: round(float(r[f"test/{g}/chrf"]), 2) for g in groups}
        for _, r in confirm[confirm["method"] == "none"].iterrows()
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--storage", type=Path, help="default: a temporary directory")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        storage = args.storage or Path(tmp) / "runs"
        cold_s = run_quickstart(
            "toy_scaling", storage, args.set, cache=Path(tmp) / "cache", sweep="toy_scaling"
        )
        exp = storage / "toy_scaling"
        subprocess.run(
            [sys.executable, "-m", "mmkd.cli", "curves", str(exp)], check=True, stdout=subprocess.DEVNULL
        )
        df = pd.read_parquet(exp / "mmkd" / "results.parquet")
        confirm = pd.read_csv(exp / "mmkd" / "curves" / "confirm.csv")
        gain = pd.read_csv(exp / "mmkd" / "curves" / "gain.csv")
        baselines = read_baselines(exp / "mmkd")
    stage = df.drop_duplicates("trial_id")["stage"].value_counts()
    ratios = confirm.groupby("student")["ratio"].agg(lambda r: sorted({round(float(x), 1) for x in r}))
    figures = {
        "cold_s": round(cold_s, 1),
        "within_45_min": cold_s <= GOAL_S,
        "search_trials": int(stage.get("search", 0)),
        "confirm_trials": int(stage.get("confirm", 0)),
        "cells": len(confirm),
        "ratios": ratios.to_dict(),
        "seeds": sorted({int(n) for n in confirm["n_seeds"]}),
        "gain_low_resource_chrf": gains(gain, "low_resource"),
        "gain_zero_shot_chrf": gains(gain, "zero_shot"),
        **levels(baselines, confirm),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
