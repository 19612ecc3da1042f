"""Per-trial overhead of mmkd's runner: 32 very short trials whose compute is known exactly.

    python benchmarks/overhead.py [--trials 32] [--trial-seconds 1.0]

Runs the quickstart sweep with ``--simulate`` (trials sleep a known time instead of training; Tune,
Optuna, the WLR stopper, checkpoints and storage are real) on a local Ray with this machine's CPUs, one
CPU per trial, through ``mmkd.sweep.runner.run`` — the code ``mmkd sweep run`` calls. Then

    overhead_per_trial_s = (fit wall time − Σ trial compute / slots) / trials

where the fit wall time is Tune's ``fit()`` (from its first callback to its last), the trial compute is
the time the trials spent in their simulated steps and evaluations (from the results table) and slots is
the number of trials that run at once. ``overhead_per_trial_end_to_end_s`` uses the wall time of the whole
``run()`` instead: Ray start-up, the searcher, the results table and the best-trials table included.
Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
from driver import DriverTimer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--trial-seconds", type=float, default=1.0, help="simulated compute per trial")
    ap.add_argument("--storage", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ray

    from mmkd import config
    from mmkd.models import get_family
    from mmkd.sweep import runner

    slots = os.cpu_count() or 1
    max_steps, eval_every = 20, 10
    # One simulated step of student 's' costs step_seconds / ratio (its teacher is 'l').
    tiny = get_family("tiny")
    ratio = tiny.size("l").params / tiny.size("s").params
    sweep = config.load(
        "quickstart",
        [
            "simulate.enabled=true",
            f"simulate.step_seconds={args.trial_seconds / max_steps * ratio}",
            "simulate.eval_seconds=0",
            f"search.num_samples={args.trials}",
            "search.student=[s]",
            f"train.max_steps={max_steps}",
            f"train.eval_every={eval_every}",
            "stop.wlr=null",
            "resources.cpu=1",
        ],
    )
    storage = args.storage or Path(tempfile.mkdtemp(prefix="mmkd-overhead-"))
    timer = DriverTimer()
    started = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        code = runner.run(sweep, name="overhead", storage=str(storage), callbacks=[timer])
    end_to_end = time.perf_counter() - started
    ray.shutdown()
    if code != 0:
        raise SystemExit(f"the sweep failed with exit code {code}")
    df = pd.read_parquet(storage / "overhead" / "mmkd" / "results.parquet")
    steps = df.groupby("trial_id")["step"].diff().fillna(df["step"])
    compute = float((df["time/train_step_s"] * steps + df["time/eval_s"]).sum())
    trials = int(df["trial_id"].nunique())
    print(
        json.dumps(
            {
                "trials": trials,
                "slots": slots,
                "trial_compute_s": compute / trials,
                "fit_wall_s": timer.wall_s,
                "end_to_end_wall_s": end_to_end,
                "overhead_per_trial_s": (timer.wall_s - compute / slots) / trials,
                "overhead_per_trial_end_to_end_s": (end_to_end - compute / slots) / trials,
                "fit_until_first_trial_s": timer.until_first_start_s,
                "fit_after_last_trial_s": timer.after_last_end_s,
                "driver_cpu_s": timer.cpu_s,
                "results": timer.results,
            }
        )
    )


if __name__ == "__main__":
    main()
