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

    python benchmarks/overhead.py --workers 2 [--trials 4]

With ``--workers N`` it measures instead what a trial pays for being a Ray Train run of N workers
(``resources.workers``, mmkd/sweep/train_run.py) rather than a function in its Tune actor: the same
trials (two reports each, no compute) run once in-actor and once each as a ``TorchTrainer`` of N gloo
workers forwarding its reports through ``TuneReportCallback``, one trial at a time; then

    train_overhead_per_trial_s = (Train-path fit wall − in-actor fit wall) / trials

It isolates Ray Train's machinery (controller, worker group, process group): the recipe is not run.
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
    ap.add_argument("--workers", type=int, default=0, help="N >= 1: the Train path's overhead at N workers")
    args = ap.parse_args()
    if args.workers:
        train_overhead(args.workers, args.trials, args.storage)
        return
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


def _in_actor(config: dict) -> None:
    from ray import tune

    for step in (1, 2):
        tune.report({"step": step})


def _worker(config: dict) -> None:
    from ray import train

    for step in (1, 2):
        train.report({"step": step})


def _train_driver(config: dict) -> None:
    from ray import train, tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    TorchTrainer(
        _worker,
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=train.ScalingConfig(num_workers=config["workers"], resources_per_worker={"CPU": 1}),
        run_config=train.RunConfig(
            name=f"overhead-{tune.get_context().get_trial_id()}",
            storage_path=config["storage"],
            callbacks=[TuneReportCallback()],
        ),
    ).fit()


def train_overhead(workers: int, trials: int, storage: Path | None) -> None:
    import ray
    from ray import tune

    from mmkd.sweep.cluster import addressed_ray
    from mmkd.sweep.train_run import DRIVER_CPU

    storage = storage or Path(tempfile.mkdtemp(prefix="mmkd-overhead-"))
    with addressed_ray():  # Train's processes must not ask another Ray on the machine
        ray.init(address="local", num_cpus=workers + 1, include_dashboard=False)
    walls = {}
    for path, fn, resources in (
        ("in_actor", _in_actor, {"CPU": 1}),
        ("train", _train_driver, {"CPU": DRIVER_CPU}),
    ):
        timer = DriverTimer()
        tune.Tuner(
            tune.with_resources(fn, resources),
            param_space={
                "workers": workers,
                "storage": str(storage / "train"),
                "i": tune.grid_search(list(range(trials))),
            },
            tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
            run_config=tune.RunConfig(name=path, storage_path=str(storage), callbacks=[timer], verbose=0),
        ).fit()
        walls[path] = timer.wall_s
    ray.shutdown()
    print(
        json.dumps(
            {
                "workers": workers,
                "trials": trials,
                "in_actor_fit_wall_s": walls["in_actor"],
                "train_fit_wall_s": walls["train"],
                "in_actor_per_trial_s": walls["in_actor"] / trials,
                "train_per_trial_s": walls["train"] / trials,
                "train_overhead_per_trial_s": (walls["train"] - walls["in_actor"]) / trials,
                "load_average_1min": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
