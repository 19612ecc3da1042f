"""TensorBoard logging on the sweep driver: CPU per result of Tune's logger given every number of a report
against the runner's ``logs.LiveTensorBoard`` (the same logger, given the live metrics only).

    python benchmarks/tensorboard.py [--trials 300] [--rounds 3]

Each logger logs ``--trials`` trials of two reports each (start, two results, end), the way Tune's
driver calls it, with the reports ``--simulate`` trials send for the quickstart sweep (19 languages:
~135 numbers each). The arms:

- ``tune``: Tune's ``TBXLoggerCallback``, every number of every report (what Tune adds by default);
- ``mmkd``: ``logs.LiveTensorBoard``, the runner's: Tune's logger given only the live metrics and loss
  terms (``telemetry.METRICS`` and ``train/*``): tensorboardX's ``SummaryWriter``, a queue and writer
  thread per trial, one queued event per scalar.

CPU is the driver process's (every thread: tensorboardX writes from its own threads), wall includes
waiting for the disk; the arms alternate over ``--rounds`` rounds, and the figures are the median
per-result cost. Prints one JSON line last: ``tb_ms_per_result`` (CPU) and ``tb_wall_ms_per_result`` per
arm, and the ratio ``tb_mmkd_over_tune`` (CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ray.tune.logger import TBXLoggerCallback
from ray.tune.result import TRAINING_ITERATION

from mmkd import config
from mmkd.data import get_task
from mmkd.sweep import simulate
from mmkd.sweep.logs import LiveTensorBoard


class _Trial:
    """What a logger reads of a Tune trial."""

    def __init__(self, folder: Path, params: dict[str, Any]) -> None:
        self.local_path, self.evaluated_params = str(folder), params

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


def reports(trial_config: dict[str, Any], languages: simulate.Languages) -> list[dict[str, Any]]:
    """The two reports of a simulated quickstart trial, with the keys Tune adds (``config`` nested)."""
    weights = {k: 1.0 for k in ("task", "token", "word", "sentence", "structure")}
    return [
        {
            "step": step,
            **simulate.train_losses(trial_config, step, weights, 0),
            **{k: trial_config[k] for k in ("teacher", "student", "ratio", "lr", "adapter_rank")},
            **simulate.evaluate(trial_config, step, languages),
            TRAINING_ITERATION: i,
            "time_this_iter_s": 5.0,
            "timestamp": int(time.time()),
            "done": False,
            "config": trial_config,
        }
        for i, step in enumerate((120, 240), start=1)
    ]


def run_arm(logger: Any, trials: int, folder: Path, results: list[dict[str, Any]]) -> tuple[float, float]:
    """CPU and wall ms per result of ``logger`` over ``trials`` trials."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for n in range(trials):
        trial = _Trial(folder / f"trial_{n}", {"lr": results[0]["lr"], "models": "l:m"})
        logger.log_trial_start(trial)
        for result in results:
            logger.log_trial_result(result[TRAINING_ITERATION], trial, result)
        logger.log_trial_end(trial)
    n = trials * len(results)
    return 1000 * (time.process_time() - cpu0) / n, 1000 * (time.perf_counter() - wall0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sweep = config.load("quickstart")
    languages = simulate.Languages.of_task(get_task(sweep.task.name, **sweep.task_options()))
    trial_config = {
        "lr": 3e-3,
        "adapter_rank": 8,
        "teacher": "l",
        "student": "m",
        "teacher_params": 1_362_944,
        "student_params": 591_712,
        "ratio": 2.3,
    }
    results = reports(trial_config, languages)
    arms = {"tune": TBXLoggerCallback, "mmkd": LiveTensorBoard}
    cpu: dict[str, list[float]] = {name: [] for name in arms}
    wall: dict[str, list[float]] = {name: [] for name in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, cls in arms.items():
                c, w = run_arm(cls(), args.trials, Path(tmp, f"{name}_{r}"), results)
                cpu[name].append(c)
                wall[name].append(w)
                print(f"round {r + 1}: {name:9s} CPU {c:.2f} ms, wall {w:.2f} ms per result", flush=True)
    median = {name: statistics.median(v) for name, v in cpu.items()}
    print(
        json.dumps(
            {
                "tb_ms_per_result": median,
                "tb_wall_ms_per_result": {name: statistics.median(v) for name, v in wall.items()},
                "tb_mmkd_over_tune": median["mmkd"] / median["tune"],
            }
        )
    )


if __name__ == "__main__":
    main()
