"""How long the quick commands take to answer: `mmkd --help`, `mmkd sweep --help`, `mmkd sweep validate
quickstart` and `mmkd sweep status` of a finished sweep, each a fresh process as a user runs it.

    python benchmarks/cli_latency.py [--repeats 3] [--experiment DIR]

Without ``--experiment`` it first runs a small simulated sweep (8 trials on a local Ray, about a minute)
and asks for its status. Prints one JSON line: per command the median wall and CPU seconds (user +
system of the child) over the repeats. CPU seconds are the steadier figure on a shared machine. Goal:
about a second each (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
SIMULATED = [
    "--simulate",
    *("--set", "search.num_samples=8"),
    *("--set", "train.max_steps=40"),
    *("--set", "train.eval_every=20"),
    *("--set", "simulate.step_seconds=0.01"),
    *("--set", "simulate.eval_seconds=0.05"),
]


def mmkd(*args: str) -> tuple[float, float]:
    """Wall and CPU seconds of one `mmkd ARGS` process (which must exit 0)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mmkd.cli", *args], check=True, env=ENV, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--experiment", help="a sweep's folder for `status` (default: run a simulated one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        experiment = args.experiment
        if experiment is None:
            mmkd("sweep", "run", "quickstart", "--name", "latency", "--storage", tmp, *SIMULATED)
            experiment = str(Path(tmp) / "latency")
        commands = {
            "help": ["--help"],
            "sweep_help": ["sweep", "--help"],
            "validate": ["sweep", "validate", "quickstart"],
            "status": ["sweep", "status", experiment],
        }
        figures: dict[str, float] = {}
        for name, command in commands.items():
            runs = [mmkd(*command) for _ in range(args.repeats)]
            figures[f"{name}_wall_s"] = round(statistics.median(w for w, _ in runs), 2)
            figures[f"{name}_cpu_s"] = round(statistics.median(c for _, c in runs), 2)
    print(json.dumps({"repeats": args.repeats, **figures}))


if __name__ == "__main__":
    main()
