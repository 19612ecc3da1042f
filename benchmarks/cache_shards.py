"""Wall time of a sweep's teacher-output cache built in one shard against two, through the Ray tasks the
sweep runs (mmkd.sweep.runner._cache_tasks).

    python benchmarks/cache_shards.py [--teacher l] [--rows 2000] [--repeats 5]

One local Ray with 2 CPUs; the quickstart's training rows and tokenisation; a randomly initialised tiny
teacher (the time does not depend on its weights). Each task gets the quickstart's ``resources.cpu: 1``,
so one shard uses one core and two shards two: on a GPU cluster each shard is one GPU instead. A warm-up
build starts Ray's two worker processes first; then builds alternate (1, 2, 1, 2, ...) into fresh folders
the fastest of each count are compared (on a machine others share, the least disturbed build; medians
too), with the same one-shard build in this process (no Ray, warm) for reference. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd.config import SweepConfig, load
from mmkd.distill.cache import ensure_cache
from mmkd.models.zoo import tiny_config
from mmkd.sweep.runner import Experiment, _cache_tasks


def build(sweep: SweepConfig, teacher: Path, storage: Path, name: str) -> float:
    import ray

    start = time.perf_counter()
    ray.get(_cache_tasks(sweep, Experiment(storage, name), {"t": str(teacher)})["t"])
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", default="l", help="tiny-family size of the teacher (default l)")
    ap.add_argument(
        "--rows", type=int, default=2000, help="training examples (default: the quickstart's 2000)"
    )
    ap.add_argument("--repeats", type=int, default=5, help="timed builds per shard count (default 5)")
    args = ap.parse_args()
    import ray

    torch.manual_seed(0)
    sweeps = {
        n: load("quickstart", [f"task.n_train={args.rows}", f"distill.cache_shards={n}"]) for n in (1, 2)
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        teacher = root / "teacher"
        T5ForConditionalGeneration(tiny_config(args.teacher)).save_pretrained(teacher)
        ByT5Tokenizer().save_pretrained(teacher)
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        build(sweeps[2], teacher, root, "warm-up")
        times: dict[int, list[float]] = {1: [], 2: []}
        for i in range(args.repeats):
            for n in (1, 2):
                times[n].append(build(sweeps[n], teacher, root, f"run{i}-{n}"))
        ray.shutdown()
        in_process = []
        for i in range(args.repeats + 1):  # the first warms this process up, as the Ray one did its workers
            start = time.perf_counter()
            ensure_cache(teacher, sweeps[1], root / f"in-process-{i}")
            in_process.append(time.perf_counter() - start)
    one, two = min(times[1]), min(times[2])
    median = {n: statistics.median(ts) for n, ts in times.items()}
    print(json.dumps({
        "benchmark": "cache_shards", "teacher": args.teacher, "rows": args.rows, "ray_cpus": 2,
        "one_shard_s": round(one, 2), "two_shards_s": round(two, 2), "speedup": round(one / two, 2),
        "speedup_of_medians": round(median[1] / median[2], 2),
        "in_process_s": round(min(in_process[1:]), 2),
        "runs_s": {str(n): [round(t, 2) for t in ts] for n, ts in times.items()},
        "load_avg_1min": os.getloadavg()[0],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
