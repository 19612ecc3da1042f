"""What WLR early stopping saves: the same seeded sweep with and without it.

    python benchmarks/early_stop.py [--storage /tmp/mmkd-bench] [--set key=value ...]
    python benchmarks/early_stop.py --storage /tmp/mmkd-bench --reuse   # figures of an earlier run

Runs the quickstart sweep (smaller: 8 trials, 120 steps, 10 languages) twice through mmkd's own runner
— once with `stop.wlr` (absolute, threshold 0.9 on low-resource WLR, no grace: judged from the first
evaluation) and once without — and compares the training steps spent and the best objective. Prints one
JSON line last: ``best_*`` is the best trial's objective at its final evaluation (what the sweep
reports); ``best_any_eval_*`` the best objective at any evaluation of any trial (Tune's ``scope="all"``).

Both arms sample the same 8 configurations (`n_startup_trials = num_samples`: Optuna's seeded random
phase only), so the comparison measures the stopping alone. With TPE, each arm's sampler would learn from
different results after the first stop and explore differently, mixing search luck into the figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd
from common import run_quickstart

BASE = [
    "search.num_samples=8",
    "train.max_steps=120",
    "train.eval_every=30",
    "task.n_dev=16",
    "task.languages=[fr, ru, ar, hi, tr, te, ml, my, sw, jv]",
    "search.n_startup_trials=8",
]
WLR_STOP = "stop.wlr={metric: eval/low_resource/wlr, threshold: 0.9, grace_evals: 0, mode: absolute}"
SEARCHED = ["lr", "adapter_rank", "student", "teacher"]


def run(name: str, storage: Path, overrides: list[str], reuse: bool) -> tuple[pd.DataFrame, float | None]:
    seconds = None if reuse else run_quickstart(name, storage, overrides)
    return pd.read_parquet(storage / name / "mmkd" / "results.parquet"), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--storage", type=Path, default=None)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--reuse", action="store_true", help="read the results of an earlier run in --storage")
    args = ap.parse_args()
    if args.reuse and args.storage is None:
        ap.error("--reuse needs the --storage of the earlier run")
    storage = args.storage or Path(tempfile.mkdtemp(prefix="mmkd-bench-"))
    with_stop, t_with = run("with-wlr-stop", storage, [*BASE, *args.set, WLR_STOP], args.reuse)
    without, t_without = run("without-wlr-stop", storage, [*BASE, *args.set, "stop.wlr=null"], args.reuse)

    def steps(df: pd.DataFrame) -> int:
        return int(df.groupby("trial_id")["step"].max().sum())

    def best(df: pd.DataFrame) -> float:
        return float(df.sort_values("step").groupby("trial_id")["eval/score"].last().max())

    def configs(df: pd.DataFrame) -> list[tuple[object, ...]]:
        return sorted(df.drop_duplicates("trial_id")[SEARCHED].itertuples(index=False, name=None))

    print(
        json.dumps(
            {
                "steps_with": steps(with_stop),
                "steps_without": steps(without),
                "step_ratio": steps(with_stop) / steps(without),
                "best_with": best(with_stop),
                "best_without": best(without),
                "best_score_delta": best(with_stop) - best(without),
                "best_any_eval_with": float(with_stop["eval/score"].max()),
                "best_any_eval_without": float(without["eval/score"].max()),
                "same_configs": configs(with_stop) == configs(without),
                "stopped_for_wlr": int((with_stop.drop_duplicates("trial_id")["stopped_by"] == "wlr").sum()),
                "wall_s_with": t_with,
                "wall_s_without": t_without,
            }
        )
    )


if __name__ == "__main__":
    main()
