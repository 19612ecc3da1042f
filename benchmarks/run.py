"""The benchmark suite: runs each benchmark script and merges their figures into one JSON object.

    python benchmarks/run.py [--json] [--quick] [--only NAME[,NAME...]] [--skip NAME[,NAME...]]

Each script runs as its own process (a fresh Ray each time) and prints one JSON line last; this prints
every script's line as it finishes (unless ``--json``) and, last, one JSON object with the headline
figures (``null`` when a part did not run), ``parts`` with each script's full output, and ``skipped``
with the reason a part was skipped or failed — a failing part never stops the others.

Parts: overhead, distill_step (all MMKD levels), distill_token (token level only), early_stop,
quickstart, lid, suggest, simulate, curves, tensorboard, cli_latency, cache_shards. ``--quick`` runs the
short parts only, smaller (overhead, distill_step, distill_token, lid, suggest, curves, tensorboard,
cli_latency, cache_shards, and a 200-trial simulation on 16 GPUs); the full suite takes about an hour on 2
cores. Goals: see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: part -> (script arguments, arguments with --quick or None to skip the part in quick mode)
PARTS: dict[str, tuple[list[str], list[str] | None]] = {
    "overhead": (["overhead.py"], ["overhead.py"]),
    "distill_step": (["distill_step.py"], ["distill_step.py", "--steps", "10"]),
    "distill_token": (
        ["distill_step.py", "--levels", "token"],
        ["distill_step.py", "--levels", "token", "--steps", "10"],
    ),
    "early_stop": (["early_stop.py"], None),
    "quickstart": (["quickstart.py"], None),
    "lid": (["lid.py"], ["lid.py", "--outputs", "5000"]),
    "suggest": (["suggest.py"], ["suggest.py", "--trials", "1100"]),
    "simulate": (["simulate.py"], ["simulate.py", "--trials", "200", "--nodes", "2"]),
    "curves": (["curves.py"], ["curves.py", "--trials", "200"]),
    "tensorboard": (["tensorboard.py"], ["tensorboard.py", "--trials", "100"]),
    "cli_latency": (["cli_latency.py"], ["cli_latency.py", "--repeats", "1"]),
    "cache_shards": (["cache_shards.py"], ["cache_shards.py", "--repeats", "2"]),
    "actor_storm": (["actor_storm.py"], ["actor_storm.py", "--trials", "8"]),
}

#: headline figure -> (part, key in that part's JSON)
FIGURES: dict[str, tuple[str, str]] = {
    "overhead_per_trial_s": ("overhead", "overhead_per_trial_s"),
    "distill_cached_over_plain": ("distill_step", "cached_over_plain"),
    "distill_token_cached_over_plain": ("distill_token", "cached_over_plain"),
    "early_stop_step_ratio": ("early_stop", "step_ratio"),
    "eval_share": ("quickstart", "eval_share"),
    "eval_share_forward_only": ("quickstart", "eval_share_forward_only"),
    "quickstart_cold_s": ("quickstart", "quickstart_cold_s"),
    "quickstart_warm_s": ("quickstart", "quickstart_warm_s"),
    "lid_outputs_per_s": ("lid", "lid_outputs_per_s"),
    "sim_driver_overhead_ms": ("simulate", "sim_driver_overhead_ms"),
    "sim_suggest_ms": ("simulate", "sim_suggest_ms"),
    "sim_trials": ("simulate", "trials"),
    "suggest_cpu_ms_at_1000": ("suggest", "suggest_cpu_ms_at_1000"),
    "sim_snapshot_ms_mean": ("simulate", "snapshot_ms_mean"),
    "sim_driver_peak_rss_mb": ("simulate", "driver_peak_rss_mb"),
    "curves_1000_trials_s": ("curves", "build_curves_s"),
    "tensorboard_ms_per_result": ("tensorboard", "tb_ms_per_result"),
    "cli_validate_cpu_s": ("cli_latency", "validate_cpu_s"),
    "cli_status_cpu_s": ("cli_latency", "status_cpu_s"),
    "cache_two_shards_speedup": ("cache_shards", "speedup"),
}


def run_part(args: list[str], timeout: float) -> tuple[dict[str, Any] | None, str]:
    """(the script's last JSON line, '') or (None, why it failed)."""
    try:
        done = subprocess.run(
            [sys.executable, *args], cwd=HERE, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"exit code {done.returncode}: {tail}"
    try:
        return json.loads(lines[-1]), ""
    except json.JSONDecodeError:
        return None, f"last line is not JSON: {lines[-1][:200]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the final JSON object")
    ap.add_argument("--quick", action="store_true", help="the short parts only, smaller")
    ap.add_argument("--only", help=f"comma-separated parts: {', '.join(PARTS)}")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per part")
    args = ap.parse_args()
    chosen = args.only.split(",") if args.only else list(PARTS)
    unknown = [p for p in [*chosen, *filter(None, args.skip.split(","))] if p not in PARTS]
    if unknown:
        ap.error(f"unknown part {unknown[0]!r}; parts: {', '.join(PARTS)}")
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in chosen:
        full, quick = PARTS[name]
        script = quick if args.quick else full
        if name in args.skip.split(","):
            skipped[name] = "--skip"
            continue
        if script is None:
            skipped[name] = "not part of --quick"
            continue
        started = time.perf_counter()
        out, why = run_part(script, args.timeout)
        if out is None:
            skipped[name] = why
        else:
            results[name] = {**out, "part_wall_s": time.perf_counter() - started}
        if not args.json:
            print(f"{name}: {json.dumps(results.get(name)) if out else 'skipped: ' + why}", flush=True)
    figures = {key: results.get(part, {}).get(field) for key, (part, field) in FIGURES.items()}
    notes = {}
    if figures["sim_suggest_ms"] is None and figures["suggest_cpu_ms_at_1000"]:
        # The simulation proposes its last trials before 1,000 have finished unless it runs > ~1,130.
        figures["sim_suggest_ms"] = figures["suggest_cpu_ms_at_1000"]
        notes["sim_suggest_ms"] = "from suggest.py (CPU ms of the runner's sampler at 1,000 finished trials)"
    print(json.dumps({**figures, "quick": args.quick, "notes": notes, "skipped": skipped, "parts": results}))


if __name__ == "__main__":
    main()
