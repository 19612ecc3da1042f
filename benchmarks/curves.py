"""How long `mmkd curves` takes on a large sweep: 1,000 trials × 10 evaluations × 20 languages.

    python benchmarks/curves.py [--trials 1000]

Writes a synthetic experiment in Ray Tune's on-disk format (result.json lines, experiment_state,
per-example files), then times loading the tidy table and building every table, plot and the report.
Prints one JSON line last. Goal: under 10 s for 1,000 trials.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from mmkd.curves.aggregate import load_results
from mmkd.curves.report import build_curves

LANGS = ["en", *"fr ru ar hi it pt tr vi th".split(), *"az gu jv ml mr my pa sw te".split()]
LOW = "az,gu,jv,ml,mr,my,pa,sw,te"


def write(exp: Path, trials: int, evals: int) -> None:
    rng = random.Random(0)
    sizes = {"xs": 33120, "s": 189440, "m": 591712}
    states = []
    for i in range(trials):
        student = rng.choice(list(sizes))
        lr, rank = 10 ** rng.uniform(-4, -2), rng.choice([0, 8])
        trial_id = f"{i:08x}"
        tdir = exp / f"tune_trial_{trial_id}_{i}"
        tdir.mkdir(parents=True)
        params = {
            "teacher": "l",
            "student": student,
            "teacher_params": 1362944,
            "student_params": sizes[student],
            "ratio": 1362944 / sizes[student],
            "lr": lr,
            "adapter_rank": rank,
            "trainable_params": 1000,
            "seed": 0,
            "max_steps": 10 * evals,
            "source_lang": "en",
            "low_resource_langs": LOW,
        }
        with (tdir / "result.json").open("w") as f:
            for e in range(1, evals + 1):
                row = {"step": 10 * e, "train/loss": rng.random(), "trial_id": trial_id, **params}
                for lang in LANGS:
                    row[f"eval/{lang}/chrf"] = rng.uniform(0, 80)
                    row[f"eval/{lang}/wlr"] = min(1.0, lr * 100 * rng.random())
                    row[f"eval/{lang}/src_rate"] = rng.random()
                row["eval/zero_shot/chrf"] = row["eval/score"] = rng.uniform(0, 40)
                row["eval/zero_shot/wlr"] = row["eval/low_resource/wlr"] = min(1.0, lr * 100)
                row["eval/low_resource/chrf"] = rng.uniform(0, 30)
                f.write(json.dumps(row) + "\n")
        ckpt = tdir / f"checkpoint_{evals - 1:06d}"
        ckpt.mkdir()
        with (ckpt / "mmkd_examples.jsonl").open("w") as f:
            for lang in LANGS:
                for k in range(24):
                    f.write(
                        json.dumps(
                            {
                                "step": 10 * evals,
                                "lang": lang,
                                "id": f"dev-{k}",
                                "chrf": rng.uniform(0, 90),
                                "verdict": rng.choice(["right", "wrong", "undetermined"]),
                                "label": lang,
                                "output": "x",
                            }
                        )
                        + "\n"
                    )
        states.append([json.dumps({"trial_id": trial_id, "status": "TERMINATED"}), "{}"])
    (exp / "experiment_state-2026-11-24_10-00-00.json").write_text(json.dumps({"trial_data": states}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--evals", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exp = Path(tmp) / "big"
        write(exp, args.trials, args.evals)
        start = time.perf_counter()
        rows = len(load_results(exp))
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        build_curves(exp)
        build_s = time.perf_counter() - start
    print(json.dumps({"trials": args.trials, "rows": rows, "load_s": load_s, "build_curves_s": build_s}))


if __name__ == "__main__":
    main()
