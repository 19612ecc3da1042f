"""Optuna suggestion cost as a sweep grows, without Ray: the runner's sampler, Optuna's plain TPE.

    python benchmarks/suggest.py [--trials 2100] [--concurrent 64]

Drives ``OptunaSearch`` (Ray Tune's Optuna searcher, as the runner builds it, over the quickstart's
define-by-run space) through ``--trials`` trials, ``--concurrent`` of them in flight at a time, each
finished trial telling the simulation's final score; times every ``suggest`` in CPU seconds (this
process only, so other load on the machine does not count). Prints the median per 200 finished trials,
and one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from typing import Any


def measure(sampler: Any, trials: int, concurrent: int) -> dict[int, float]:
    from ray.tune.search.optuna import OptunaSearch

    from mmkd import config
    from mmkd.sweep.simulate import Languages, evaluate
    from mmkd.sweep.space import Space

    sweep = config.load("quickstart")
    langs = Languages("en", ("en", "fr", "te"), ("te",))
    search = OptunaSearch(space=Space(sweep), metric="eval/score", mode="max", sampler=sampler)
    running: list[tuple[str, dict[str, Any]]] = []
    by_bucket: dict[int, list[float]] = {}
    finished = 0
    for i in range(trials):
        started = time.process_time()
        cfg = search.suggest(f"t{i}")
        by_bucket.setdefault(finished // 200 * 200, []).append(time.process_time() - started)
        for e in range(1, 4):
            search.on_trial_result(f"t{i}", {"eval/score": 1.0, "training_iteration": e})
        running.append((f"t{i}", cfg))
        if len(running) >= concurrent:
            trial_id, cfg = running.pop(0)
            search.on_trial_complete(trial_id, {"eval/score": evaluate(cfg, 240, langs)["eval/score"]})
            finished += 1
    return {k: 1000 * statistics.median(v) for k, v in sorted(by_bucket.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=2100)
    ap.add_argument("--concurrent", type=int, default=64)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    by_finished = measure(
        optuna.samplers.TPESampler(seed=0, n_startup_trials=4), args.trials, args.concurrent
    )
    print("tpe", json.dumps(by_finished), flush=True)
    at = max(k for k in by_finished if k <= 1000)
    print(
        json.dumps(
            {
                "suggest_cpu_ms_at_1000": by_finished[at],
                "suggest_cpu_ms_at_max": by_finished[max(by_finished)],
                "by_finished_trials": by_finished,
            }
        )
    )


if __name__ == "__main__":
    main()
