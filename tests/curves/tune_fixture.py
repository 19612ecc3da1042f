"""Experiment directories in Ray Tune 2.60's on-disk format, written without Ray.

The format was copied from a real run (a function trainable calling ``tune.report`` with checkpoints,
``FailureConfig(max_failures=1)``, ``CheckpointConfig(num_to_keep=2)``): per trial a folder
``<trainable>_<exp>_<index:05d>_<index>_<tag>_<date>`` with ``params.json``, ``result.json`` (one JSON
line per report: the metrics, then Tune's keys), ``progress.csv``, ``checkpoint_<k:06d>/`` folders (the
last two kept) and, for an errored trial, ``error.txt``; at the top ``experiment_state-<date>.json``
whose ``trial_data`` holds ``[trial state JSON, runtime metadata JSON]`` string pairs.

``write_experiment`` writes the small sweep the tests check by hand (its layout is in ``SWEEP``);
``python -m tests.curves.tune_fixture DIR --trials 1000`` writes a large synthetic one for timing.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXP_ID = "a1b2c"
LANGS = ["en", "de", "ru", "te", "ta"]  # en: source; de, ru: zero-shot high-resource; te, ta: low-resource
LOW = ["te", "ta"]
# Per-language chrF = the trial's base + offset: zero-shot chrF (the objective) = base - 0.5,
# high-resource chrF = base + 4, low-resource chrF = base - 5.
OFFSET = {"en": 20.0, "de": 5.0, "ru": 3.0, "te": -4.0, "ta": -6.0}
PARAMS = {"xs": 1_000, "s": 4_000, "m": 16_000, "l": 64_000, "xl": 256_000}
MAX_STEPS = 20
N_EXAMPLES = 40  # per language, 4 of them undetermined
UNDETERMINED = 4


def base_score(student: str, teacher: str, rank: int, lr: float) -> float:
    """The designed chrF base of a trial's final evaluation.

    Full finetuning is best at lr 1e-4, adapters at 1e-3; a ratio of 16 beats 4 and 64 for either student.
    """
    ratio = PARAMS[teacher] / PARAMS[student]
    by_ratio = {4.0: 0.0, 16.0: 6.0, 64.0: 4.0, 256.0: 1.0}[ratio]
    if rank == 0:
        by_lr = {1e-4: 4.0, 1e-3: 2.0, 1e-2: -6.0}[lr]
    else:
        by_lr = {1e-4: 1.0, 1e-3: 5.0, 1e-2: -2.0}[lr]
    return 30.0 + (5.0 if student == "s" else 0.0) + by_ratio + by_lr


def wlr_level(lr: float, rank: int) -> float:
    """Wrong-language probability of a high-resource language: rises with the learning rate."""
    return {1e-4: 0.1, 1e-3: 0.25, 1e-2: 0.6, 3e-2: 0.8, 5e-4: 0.2}[lr] - (0.05 if rank else 0.0)


@dataclass
class Trial:
    index: int
    student: str
    teacher: str
    rank: int
    lr: float
    seed: int = 0
    # (step, chrF base) per report, in the order reported (a resumed trial repeats a step)
    reports: list[tuple[int, float]] = field(default_factory=list)
    status: str = "TERMINATED"
    extra: dict[str, Any] = field(default_factory=dict)  # reported on the last row only

    @property
    def trial_id(self) -> str:
        return f"{EXP_ID}_{self.index:05d}"

    @property
    def dirname(self) -> str:
        tag = f"{self.index}_adapter_rank={self.rank},lr={self.lr:.4f},student={self.student}"
        return f"tune_trial_{self.trial_id}_{tag}_2026-11-24_10-00-00"

    @property
    def config(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "adapter_rank": self.rank,
            "teacher": self.teacher,
            "student": self.student,
            "teacher_params": PARAMS[self.teacher],
            "student_params": PARAMS[self.student],
            "ratio": PARAMS[self.teacher] / PARAMS[self.student],
        }


def grid() -> list[Trial]:
    """2 students x 3 teachers x 2 adapter settings x 3 learning rates; evaluations at steps 10 and 20."""
    trials = []
    pairs = [("xs", "m"), ("xs", "l"), ("xs", "xl"), ("s", "m"), ("s", "l"), ("s", "xl")]
    for student, teacher in pairs:
        for rank in (0, 8):
            for lr in (1e-4, 1e-3, 1e-2):
                score = base_score(student, teacher, rank, lr)
                trials.append(
                    Trial(len(trials), student, teacher, rank, lr, reports=[(10, score - 4), (20, score)])
                )
    return trials


def sweep(partial: bool = False) -> list[Trial]:
    """The hand-checked sweep: the grid, plus

    - two more seeds of (xs, ratio 64, full, lr 1e-4) at base ±1 (so the cell's mean is unchanged);
    - the lr 1e-2 full-finetuning trials of student s stopped at step 10: one recorded by the WLR stopper
      in ``mmkd/stopped_by.json``, one reporting ``stopped_by: asha``, one with no reason (derived: ``asha``);
    - an ERROR trial resumed from its checkpoint: step 10 reported twice (base 1, then base 2), then error;
    - ``partial``: a RUNNING trial (one evaluation so far, the best of its cell) and a PENDING one.
    """
    trials = grid()
    for t in trials:
        if t.student == "s" and t.rank == 0 and t.lr == 1e-2:
            t.reports = t.reports[:1]
    xs64 = next(t for t in trials if (t.student, t.teacher, t.rank, t.lr) == ("xs", "l", 0, 1e-4))
    for seed, delta in ((1, 1.0), (2, -1.0)):
        final = xs64.reports[-1][1] + delta
        trials.append(Trial(len(trials), "xs", "l", 0, 1e-4, seed, [(10, final - 4), (20, final)]))
    trials.append(Trial(len(trials), "xs", "xl", 0, 3e-2, reports=[(10, 1.0), (10, 2.0)], status="ERROR"))
    if partial:
        trials.append(Trial(len(trials), "s", "m", 8, 5e-4, reports=[(10, 60.0)], status="RUNNING"))
        trials.append(Trial(len(trials), "s", "m", 8, 5e-3, status="PENDING"))
    return trials


def metrics(
    t: Trial, step: int, base: float, rng: random.Random
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One report's metrics (the mmkd contract) and the per-example rows behind them."""
    row: dict[str, Any] = {
        "step": step,
        "train/loss": round(2.0 / step, 6),
        "train/loss_task": round(1.5 / step, 6),
        "train/loss_token": round(0.5 / step, 6),
        **t.config,
        "trainable_params": 100 if t.rank else PARAMS[t.student],
        "seed": t.seed,
        "max_steps": MAX_STEPS,
        "source_lang": "en",
        "low_resource_langs": ",".join(LOW),
    }
    examples = []
    for lang in LANGS:
        p_wrong = 0.0 if lang == "en" else min(0.95, wlr_level(t.lr, t.rank) + (0.2 if lang in LOW else 0.0))
        n_wrong = round(p_wrong * (N_EXAMPLES - UNDETERMINED))
        chrf = base + OFFSET[lang]
        for k in range(N_EXAMPLES):
            verdict = (
                "undetermined" if k < UNDETERMINED else "wrong" if k < UNDETERMINED + n_wrong else "right"
            )
            # Sentence chrF sits 2 points above the corpus chrF the trial reports (as it may in life).
            examples.append(
                {
                    "step": step,
                    "lang": lang,
                    "id": f"dev-{k}",
                    "chrf": round(rng.gauss(chrf + 2, 4), 3),
                    "verdict": verdict,
                    "label": lang if verdict == "right" else "en",
                    "output": "…",
                }
            )
        row[f"eval/{lang}/chrf"] = chrf
        row[f"eval/{lang}/wlr"] = n_wrong / (N_EXAMPLES - UNDETERMINED)
        row[f"eval/{lang}/src_rate"] = 0.0 if lang == "en" else row[f"eval/{lang}/wlr"]
        row[f"eval/{lang}/undetermined"] = UNDETERMINED / N_EXAMPLES
        row[f"eval/{lang}/lid_ref_acc"] = 1.0
    zero_shot = [lang for lang in LANGS if lang != "en"]
    for group, langs in (("zero_shot", zero_shot), ("low_resource", LOW)):
        for metric in ("chrf", "wlr"):
            row[f"eval/{group}/{metric}"] = sum(row[f"eval/{lang}/{metric}"] for lang in langs) / len(langs)
    row["eval/source/chrf"] = row["eval/en/chrf"]
    row["eval/score"] = row["eval/zero_shot/chrf"]
    return row, examples


def write_trial(exp: Path, t: Trial, rng: random.Random) -> None:
    tdir = exp / t.dirname
    tdir.mkdir(parents=True)
    (tdir / "params.json").write_text(json.dumps(t.config, indent=2))
    if not t.reports:
        return  # PENDING: Tune made the folder, the trial has not reported yet
    lines, ckpts = [], []
    (tdir / "mmkd_examples").mkdir()
    for i, (step, base) in enumerate(t.reports):
        row, examples = metrics(t, step, base, rng)
        if i == len(t.reports) - 1:
            row.update(t.extra)
        ckpt = f"checkpoint_{i:06d}"
        ckpts.append(ckpt)
        # A step evaluated again after a resume replaces its rows, as in mmkd.trial.
        (tdir / "mmkd_examples" / f"{step:06d}.jsonl").write_text(
            "".join(json.dumps(e) + "\n" for e in examples)
        )
        row.update(
            {
                "timestamp": 1795500000 + i,
                "checkpoint_dir_name": ckpt,
                "should_checkpoint": True,
                "done": False,  # a function trainable's reports never say done
                "training_iteration": i + 1,
                "trial_id": t.trial_id,
                "date": "2026-11-24_10-00-00",
                "time_this_iter_s": 0.5,
                "time_total_s": 0.5 * (i + 1),
                "pid": 1000 + t.index,
                "hostname": "vm",
                "node_ip": "192.0.2.2",
                "config": t.config,
                "time_since_restore": 0.5,
                "iterations_since_restore": 1,
            }
        )
        lines.append(row)
    (tdir / "result.json").write_text("".join(json.dumps(row) + "\n" for row in lines))
    flat = [{k: v for k, v in row.items() if k != "config"} for row in lines]
    with (tdir / "progress.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(flat[0]))
        writer.writeheader()
        writer.writerows(flat)
    for ckpt in ckpts[-2:]:  # CheckpointConfig(num_to_keep=2)
        (tdir / ckpt).mkdir()
        (tdir / ckpt / "state.json").write_text("{}")
    if t.status == "ERROR":
        (tdir / "error.txt").write_text(
            "Failure # 1 (occurred at 2026-11-24_10-00-05)\nTraceback (most recent call last):\n"
            '  File "mmkd/trial.py", line 160, in run\nRuntimeError: CUDA out of memory\n'
        )


def write_state(exp: Path, trials: list[Trial], when: str, status: dict[str, str] | None = None) -> Path:
    """``experiment_state-<when>.json`` as Tune writes it (the fields mmkd reads, and a few more)."""
    trial_data = []
    for t in trials:
        state = {
            "trial_id": t.trial_id,
            "status": (status or {}).get(t.trial_id, t.status),
            "relative_logdir": t.dirname,
            "experiment_tag": t.dirname.split("_", 4)[-1],
            "trainable_name": "tune_trial",
            "config": t.config,
            "evaluated_params": {"lr": t.lr},
            "max_failures": 1,
        }
        runtime = {
            "start_time": 1795500000.0,
            "num_failures": 1 if t.status == "ERROR" else 0,
            "error_filename": "error.txt" if t.status == "ERROR" else None,
            "pickled_error_filename": "error.pkl" if t.status == "ERROR" else None,
            "last_result": {},
        }
        trial_data.append([json.dumps(state, indent=2), json.dumps(runtime)])
    path = exp / f"experiment_state-{when}.json"
    path.write_text(json.dumps({"trial_data": trial_data, "runner_data": {}, "stats": {"start_time": 0}}))
    return path


def write_experiment(exp: Path, partial: bool = False) -> list[Trial]:
    """The hand-checked sweep (see ``sweep``) with an older state file (all PENDING), the newest one, and
    an ``mmkd/`` folder that must not be taken for a trial."""
    exp.mkdir(parents=True)
    trials = sweep(partial)
    rng = random.Random(0)
    stopped = [t for t in trials if len(t.reports) == 1 and t.status == "TERMINATED"]
    stopped[1].extra = {"stopped_by": "asha"}
    for t in trials:
        write_trial(exp, t, rng)
    write_state(exp, trials, "2026-11-24_09-00-00", {t.trial_id: "PENDING" for t in trials})
    write_state(exp, trials, "2026-11-24_10-00-00")
    (exp / "mmkd").mkdir()
    (exp / "mmkd" / "result.json").write_text('{"step": 1, "trial_id": "not-a-trial"}\n')
    (exp / "mmkd" / "stopped_by.json").write_text(
        json.dumps({stopped[0].trial_id: {"reason": "wlr", "step": 10, "value": 0.8}})
    )
    return trials


# ---------------------------------------------------------------------------------------------------
# A large synthetic sweep, for timing
# ---------------------------------------------------------------------------------------------------


def write_synthetic(
    exp: Path, n_trials: int, n_evals: int = 10, n_langs: int = 24, per_lang: int = 50
) -> None:
    """``n_trials`` trials × ``n_evals`` evaluations × ~150 columns, the last evaluation's examples kept."""
    rng = random.Random(0)
    langs = ["en", *(f"l{i:02d}" for i in range(n_langs - 1))]
    low = langs[-6:]
    students = {"xs": 1_000, "s": 4_000, "m": 16_000, "l": 64_000}
    teachers = {"l": 64_000, "xl": 256_000, "xxl": 1_024_000}
    exp.mkdir(parents=True)
    trial_data = []
    for index in range(n_trials):
        student = rng.choice(list(students))
        teacher = rng.choice([t for t in teachers if teachers[t] > students[student]])
        rank = rng.choice([0, 4, 16])
        lr = 10 ** rng.uniform(-4, -2)
        config = {
            "lr": lr,
            "adapter_rank": rank,
            "teacher": teacher,
            "student": student,
            "teacher_params": teachers[teacher],
            "student_params": students[student],
            "ratio": teachers[teacher] / students[student],
        }
        trial_id = f"{EXP_ID}_{index:05d}"
        tdir = exp / f"tune_trial_{trial_id}_{index}_lr={lr:.4f}_2026-11-24_10-00-00"
        tdir.mkdir()
        (tdir / "params.json").write_text(json.dumps(config))
        quality = 30 - 4 * abs(math.log2(config["ratio"]) - 5) - 200 * lr + rng.gauss(0, 2)
        wlr = min(0.95, 20 * lr + rng.random() * 0.2)
        lines = []
        for e in range(1, n_evals + 1):
            step = 10 * e
            row: dict[str, Any] = {
                "step": step,
                "train/loss": 1 / step,
                "train/loss_task": 1 / step,
                "train/loss_token": 1 / step,
                **config,
                "trainable_params": 1000,
                "seed": 0,
                "max_steps": 10 * n_evals,
                "source_lang": "en",
                "low_resource_langs": ",".join(low),
            }
            for lang in langs:
                row[f"eval/{lang}/chrf"] = quality * e / n_evals + rng.random()
                row[f"eval/{lang}/wlr"] = wlr
                row[f"eval/{lang}/src_rate"] = wlr / 2
                row[f"eval/{lang}/undetermined"] = 0.05
                row[f"eval/{lang}/lid_ref_acc"] = 0.98
            for group in ("zero_shot", "low_resource"):
                row[f"eval/{group}/chrf"] = row[f"eval/{langs[1]}/chrf"]
                row[f"eval/{group}/wlr"] = wlr
            row["eval/source/chrf"] = row["eval/en/chrf"]
            row["eval/score"] = row["eval/zero_shot/chrf"]
            row.update(
                trial_id=trial_id,
                training_iteration=e,
                done=False,
                timestamp=1795500000 + e,
                checkpoint_dir_name=f"checkpoint_{e - 1:06d}",
                config=config,
            )
            lines.append(json.dumps(row))
        (tdir / "result.json").write_text("\n".join(lines) + "\n")
        (tdir / f"checkpoint_{n_evals - 1:06d}").mkdir()
        (tdir / "mmkd_examples").mkdir()
        with (tdir / "mmkd_examples" / f"{10 * n_evals:06d}.jsonl").open("w") as f:
            for lang in langs:
                for k in range(per_lang):
                    verdict = "wrong" if rng.random() < wlr else "right"
                    f.write(
                        json.dumps(
                            {
                                "step": 10 * n_evals,
                                "lang": lang,
                                "id": str(k),
                                "chrf": rng.random() * 60,
                                "verdict": verdict,
                                "label": lang,
                                "output": "x",
                            }
                        )
                        + "\n"
                    )
        state = {"trial_id": trial_id, "status": "TERMINATED", "relative_logdir": tdir.name}
        # Tune's runtime metadata holds the metric history as pickled hex: tens of kB per trial.
        history = {"_type": "CLOUDPICKLE_FALLBACK", "value": "80059526" * 12}
        runtime = {
            "num_failures": 0,
            "error_filename": None,
            "last_result": json.loads(lines[-1]),
            "metric_n_steps": {key: {"5": history, "10": history} for key in json.loads(lines[-1])},
        }
        trial_data.append([json.dumps(state), json.dumps(runtime)])
    (exp / "experiment_state-2026-11-24_10-00-00.json").write_text(json.dumps({"trial_data": trial_data}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    write_synthetic(args.dir, args.trials)
