"""Scale simulation: a 2,000-trial sweep on a simulated 64-GPU fleet, everything real but the training.

    python benchmarks/simulate.py [--trials 2000] [--nodes 8] [--gpus-per-node 8] [--step-seconds 0.2]
                                  [--checkpoint-every-s 60] [--set task.languages=[fr,sw] ...]
                                  [--resume [--interrupt-at N] [--no-resume]]
    python benchmarks/simulate.py --resume-only [--stop-after-first] --storage DIR

Starts a local multi-node Ray cluster (``ray.cluster_utils.Cluster``: a head without CPUs and ``--nodes``
worker nodes with ``--gpus-per-node`` logical GPUs and as many CPUs each), then runs the quickstart sweep
with ``--simulate`` through ``mmkd.sweep.runner.run`` (the code ``mmkd sweep run`` calls) in this process,
so this process is the Tune driver: one GPU and one CPU per trial, Optuna's TPE, the WLR
stopper, checkpoints (``train.checkpoint_every_s``: at most once a minute per trial and at its last step
by default; 0 = at every evaluation), the results table at the end. Simulated trials sleep their modelled
cost (mmkd/sweep/simulate.py) instead of training. Measured on the driver:

- ``sim_driver_overhead_ms``: driver CPU time (every thread of this process) during ``fit()`` per result;
  ``sim_driver_main_thread_ms`` counts the thread of Tune's loop only (the rest is Ray's own threads and
  the syncer's); ``sim_driver_wall_ms_per_result`` is fit wall time per result, for comparison;
- ``sim_suggest_ms``: median wall time of ``OptunaSearch.suggest`` once ≥ 1,000 trials had finished;
  ``suggest_share_of_driver_cpu``: the CPU of all suggestions over the driver's;
- snapshots: count and time of Tune's experiment-state snapshots (``snapshots_forced``: those Tune forced
  because a trial had checkpointed ``num_to_keep`` times since the last one), and the size of what they
  write; ``checkpoints``: the reports that came with one;
- ``driver_peak_rss_mb``: peak resident memory of the driver;
- ``report_numbers``: how many numbers one report carries (Tune keeps statistics of each);
  ``experiment_state_kb``: the newest ``experiment_state-*.json`` at the end.

``--resume``: the sweep is interrupted (SIGINT, Ctrl-C's path: Tune saves its state and ``fit()``
returns) once ``--interrupt-at`` trials (default: all but 100) have finished, then
``python -m mmkd.cli sweep resume <exp> --address <cluster>`` finishes it in a new process on the same
cluster. The driver figures above are then those of the first process up to the interruption; added:
``state_kb_at_interrupt``, ``resume_first_result_s`` (from starting the resume command to the first
report of the resumed sweep, by the reports' ``sim/reported`` time), ``resume_wall_s`` and
``resume_cpu_s`` (the resume process, start to end).

To time the resume alone, again and again: ``--resume --no-resume --storage DIR`` stops at the
interruption and keeps the interrupted sweep; copy ``DIR`` (``cp -a``), then ``--resume-only --storage
COPY`` starts a new simulated cluster and resumes the copy (``--stop-after-first``: Ctrl-C it once a trial
has reported, so only the start is paid for). ``SIM_RESUME_PREFIX`` runs the resume command under
another, e.g. ``py-spy record --idle -f speedscope -o prof.json --``.

``--set`` overrides the quickstart sweep like ``mmkd sweep run --set`` (after this script's own settings):
fewer ``task.languages`` shows what the driver's cost per result owes to the per-language metrics.

Prints one JSON line last. Needs several GiB of memory: one Ray worker process per GPU.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pandas as pd
from driver import DriverTimer, Interrupter, peak_rss_mb, time_snapshots, time_suggestions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--max-steps", type=int, default=240)
    ap.add_argument("--eval-every", type=int, default=80)
    ap.add_argument(
        "--step-seconds",
        type=float,
        default=0.2,
        help="simulated seconds of a step of a teacher-sized student (trials: ~11 s on average)",
    )
    ap.add_argument("--eval-seconds", type=float, default=2.0)
    ap.add_argument(
        "--checkpoint-every-s",
        type=float,
        default=60.0,
        help="train.checkpoint_every_s of the trials (0: a checkpoint at every evaluation)",
    )
    ap.add_argument("--storage", type=Path, default=None)
    ap.add_argument("--resume", action="store_true", help="interrupt the sweep, then `mmkd sweep resume` it")
    ap.add_argument(
        "--interrupt-at", type=int, default=None, help="finished trials (default: --trials - 100)"
    )
    ap.add_argument(
        "--no-resume",
        action="store_true",
        help="with --resume: stop at the interruption and keep the interrupted sweep (for --resume-only)",
    )
    ap.add_argument(
        "--resume-only",
        action="store_true",
        help="only `mmkd sweep resume` the interrupted sweep under --storage, on a new simulated cluster",
    )
    ap.add_argument(
        "--stop-after-first",
        action="store_true",
        help="with --resume-only: Ctrl-C the resumed sweep once a trial has reported",
    )
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ray

    from mmkd import config
    from mmkd.sweep import runner

    sweep = config.load(
        "quickstart",
        [
            "simulate.enabled=true",
            f"simulate.step_seconds={args.step_seconds}",
            f"simulate.eval_seconds={args.eval_seconds}",
            f"search.num_samples={args.trials}",
            f"train.max_steps={args.max_steps}",
            f"train.eval_every={args.eval_every}",
            f"train.checkpoint_every_s={args.checkpoint_every_s}",
            "resources={cpu: 1, gpu: 1}",
            *args.overrides,
        ],
    )
    storage = args.storage or Path(tempfile.mkdtemp(prefix="mmkd-sim-"))
    cluster = simulated_cluster(args.nodes, args.gpus_per_node)
    if args.resume_only:
        try:
            resumed = resume(storage / "sim", cluster.address, storage / "resume.log", args.stop_after_first)
        finally:
            cluster.shutdown()
        print(json.dumps(resumed))
        return
    timer = DriverTimer()
    callbacks: list[Any] = [timer]
    if args.resume:
        callbacks.append(Interrupter(timer, args.interrupt_at or args.trials - 100))
    log = storage / "driver.log"
    storage.mkdir(parents=True, exist_ok=True)
    exp = storage / "sim"
    started = time.perf_counter()
    resumed: dict[str, Any] = {}
    try:
        with (
            time_suggestions() as suggestions,
            time_snapshots() as snapshots,
            redirect_stdout(io.StringIO()) as out,
        ):
            code = runner.run(
                sweep, name="sim", storage=str(storage), address=cluster.address, callbacks=callbacks
            )
        log.write_text(out.getvalue())
        if args.resume and code == 130 and not args.no_resume:
            ray.shutdown()
            resumed = resume(exp, cluster.address, storage / "resume.log")
            code = resumed.pop("code")
    finally:
        ray.shutdown()
        cluster.shutdown()
    run_s = time.perf_counter() - started
    if args.no_resume and code == 130:
        print(json.dumps({"interrupted": str(exp), "fit_wall_s": timer.wall_s, "run_wall_s": run_s}))
        return
    if code != 0:
        raise SystemExit(f"the sweep failed with exit code {code} (driver output: {log})")
    df = pd.read_parquet(exp / "mmkd" / "results.parquet")
    last = df.sort_values("step").groupby("trial_id").tail(1)
    spans = df.groupby("trial_id").agg(start=("sim/started", "min"), end=("sim/reported", "max"))
    busy = float((spans["end"] - spans["start"]).sum())
    events = sorted([(t, 1) for t in spans["start"]] + [(t, -1) for t in spans["end"]])
    running, peak = 0, 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    late = [s.wall_s for s in suggestions if s.finished >= 1000]
    walls = [s.wall_s for s in snapshots]
    gpus = args.nodes * args.gpus_per_node
    state_files = sorted(exp.glob("experiment_state-*.json"))
    searcher_files = sorted(exp.glob("searcher-state-*.pkl"))
    print(
        json.dumps(
            {
                "trials": int(df["trial_id"].nunique()),
                "gpus": gpus,
                "nodes": args.nodes,
                "results": timer.results,
                "results_rows": len(df),
                "checkpoints": int(df["checkpoint_dir_name"].notna().sum()),
                "repeated_trial_steps": int(df.duplicated(["trial_id", "step"]).sum()),
                "stopped_by": {str(k): int(v) for k, v in last["stopped_by"].value_counts().items()},
                "run_wall_s": run_s,
                "fit_wall_s": timer.wall_s,
                "fit_until_first_trial_s": timer.until_first_start_s,
                "fleet_utilisation": busy / (gpus * timer.wall_s),
                "peak_concurrent_trials": peak,
                "sim_driver_overhead_ms": 1000 * timer.cpu_s / timer.results,
                "sim_driver_wall_ms_per_result": 1000 * timer.wall_s / timer.results,
                "sim_driver_main_thread_ms": 1000 * timer.main_cpu_s / timer.results,
                "suggest_share_of_driver_cpu": sum(s.cpu_s for s in suggestions) / timer.cpu_s,
                "driver_cpu_share": timer.cpu_s / timer.wall_s,
                "sim_suggest_ms": 1000 * statistics.median(late) if late else None,
                "suggest_ms_p95_at_1000_plus": 1000 * statistics.quantiles(late, n=20)[-1]
                if len(late) > 20
                else None,
                "suggest_ms_under_100_finished": 1000
                * statistics.median([s.wall_s for s in suggestions if s.finished < 100] or [float("nan")]),
                "suggestions_at_1000_plus": len(late),
                "snapshots": len(snapshots),
                "snapshots_forced": sum(s.forced for s in snapshots),
                "snapshot_ms_mean": 1000 * statistics.mean(walls) if walls else None,
                "snapshot_ms_max": 1000 * max(walls) if walls else None,
                "snapshot_share_of_fit": sum(walls) / timer.wall_s,
                "snapshot_share_of_driver_cpu": sum(s.cpu_s for s in snapshots) / timer.cpu_s,
                "experiment_state_kb": state_files[-1].stat().st_size / 1024 if state_files else None,
                "searcher_state_kb": searcher_files[-1].stat().st_size / 1024 if searcher_files else None,
                "driver_peak_rss_mb": peak_rss_mb(),
                "report_numbers": _numbers(next(exp.glob("*/result.json"))),
                "outside_fit_s": run_s - timer.wall_s,  # ray.init, the results table, the best trials
                "storage": str(exp),
                **resumed,
            }
        )
    )


def simulated_cluster(nodes: int, gpus_per_node: int) -> Any:
    """A local Ray cluster: a head without CPUs and ``nodes`` nodes of ``gpus_per_node`` logical GPUs and
    as many CPUs each (``ray.cluster_utils.Cluster``), started and ready."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(nodes):
        cluster.add_node(num_cpus=gpus_per_node, num_gpus=gpus_per_node)
    cluster.wait_for_nodes()
    return cluster


def resume(exp: Path, address: str, log: Path, stop_after_first: bool = False) -> dict[str, Any]:
    """``mmkd sweep resume`` in a new process; how soon the resumed sweep reported, what it cost.
    ``stop_after_first``: Ctrl-C it once a trial has reported (to time the resume's start only).
    ``SIM_RESUME_PREFIX``: a command to run it under, e.g. ``py-spy record -o prof.json --``."""
    states = sorted(exp.glob("experiment_state-*.json"))
    at_interrupt = states[-1].stat().st_size / 1024 if states else None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.getcwd()])}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started_at, started = time.time(), time.perf_counter()
    command = [sys.executable, "-m", "mmkd.cli", "sweep", "resume", str(exp), "--address", address]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*os.environ.get("SIM_RESUME_PREFIX", "").split(), *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        while stop_after_first and proc.poll() is None:
            time.sleep(1.0)
            # A trial writes each evaluation's metrics file into its mmkd_examples/ as it reports.
            if any(p.stat().st_mtime > started_at for p in exp.glob("*/mmkd_examples")):
                os.killpg(proc.pid, signal.SIGINT)
                break
        proc.wait()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Each report's time is among what the trial kept out of Tune's report (mmkd.reporting).
    reported = [
        json.loads(path.read_text())["metrics"]["sim/reported"]
        for path in exp.glob("*/mmkd_examples/*.metrics.json")
    ]
    reported = [t for t in reported if t > started_at]
    return {
        "code": proc.returncode,
        "state_kb_at_interrupt": at_interrupt,
        "resume_first_result_s": min(reported) - started_at if reported else None,
        "resume_results": len(reported),
        "resume_wall_s": wall,
        "resume_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "resume_log": str(log),
    }


def _numbers(result_json: Path) -> int:
    """Numbers in a trial's first report, counted as Tune counts them when it keeps their statistics."""
    from numbers import Number

    from ray.tune.utils import flatten_dict

    with result_json.open() as f:
        report = json.loads(f.readline())
    return sum(isinstance(v, Number) for v in flatten_dict(report).values())


if __name__ == "__main__":
    main()
