"""Writes a small experiment directory in Ray Tune's on-disk format (without Ray)."""

import json
import random
from pathlib import Path

LANGS = ["en", "de", "ru", "te", "ta"]
LOW = ["te", "ta"]


def metrics(step, score, wlr, lang_scores=None):
    row = {
        "step": step,
        "train/loss": 1.0 / step,
        "train/loss_task": 0.5 / step,
        "source_lang": "en",
        "low_resource_langs": ",".join(LOW),
    }
    for lang in LANGS:
        row[f"eval/{lang}/chrf"] = (lang_scores or {}).get(lang, score)
        row[f"eval/{lang}/wlr"] = 0.0 if lang == "en" else wlr
        row[f"eval/{lang}/src_rate"] = 0.0
    zs = [lang for lang in LANGS if lang != "en"]
    row["eval/zero_shot/chrf"] = sum(row[f"eval/{lang}/chrf"] for lang in zs) / len(zs)
    row["eval/zero_shot/wlr"] = wlr
    row["eval/low_resource/chrf"] = sum(row[f"eval/{lang}/chrf"] for lang in LOW) / len(LOW)
    row["eval/low_resource/wlr"] = wlr
    row["eval/source/chrf"] = row["eval/en/chrf"]
    row["eval/score"] = row["eval/zero_shot/chrf"]
    return row


def write_trial(exp, index, params, reports, status, examples=None):
    trial_id = f"{index:05d}abc"
    tdir = exp / f"tune_trial_{trial_id}_{index}_lr={params['lr']}_2026-11-24_10-00-{index:02d}"
    tdir.mkdir(parents=True)
    (tdir / "params.json").write_text(json.dumps(params))
    with (tdir / "result.json").open("w") as f:
        for i, report in enumerate(reports):
            f.write(
                json.dumps(
                    {
                        **report,
                        **params,
                        "trial_id": trial_id,
                        "training_iteration": i + 1,
                        "done": False,
                        "timestamp": 1700000000 + i,
                        "config": params,
                    }
                )
                + "\n"
            )
    if examples is not None:
        ckpt = tdir / f"checkpoint_{len(reports) - 1:06d}"
        ckpt.mkdir()
        (ckpt / "mmkd_examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples))
    return trial_id, status


def write_experiment(exp: Path, partial: bool = False) -> dict:
    """Trials of student xs/s at ratios 4/16/64-ish; known best-per-cell; a resumed (repeated) step."""
    exp.mkdir(parents=True)
    rng = random.Random(0)
    states = []
    truth = {}
    index = 0
    for student, sparams in (("xs", 1000), ("s", 4000)):
        for teacher, tparams in (("m", 16000), ("l", 64000)):
            for adapter in (0, 8):
                for lr in (1e-4, 1e-3, 1e-2):
                    index += 1
                    score = (
                        10
                        + (3 if adapter else 0)
                        + 5 * (lr == 1e-3)
                        + (2 if teacher == "m" else 0)
                        + index / 100
                    )
                    wlr = {1e-4: 0.1, 1e-3: 0.3, 1e-2: 0.9}[lr]
                    params = {
                        "teacher": teacher,
                        "student": student,
                        "teacher_params": tparams,
                        "student_params": sparams,
                        "ratio": tparams / sparams,
                        "lr": lr,
                        "adapter_rank": adapter,
                        "trainable_params": 10,
                        "seed": 0,
                        "max_steps": 20,
                    }
                    reports = [metrics(10, score - 4, wlr), metrics(20, score, wlr)]
                    examples = [
                        {
                            "step": 20,
                            "lang": lang,
                            "id": f"dev-{k}",
                            "chrf": rng.gauss(score, 5),
                            "verdict": "wrong" if rng.random() < wlr else "right",
                            "label": lang,
                            "output": "x",
                        }
                        for lang in LANGS
                        for k in range(30)
                    ]
                    states.append(write_trial(exp, index, params, reports, "TERMINATED", examples))
                    key = (student, tparams / sparams, "full" if adapter == 0 else "lora r=8")
                    if score > truth.get(key, (-1, None))[0]:
                        truth[key] = (score, lr)
    # A resumed trial that reported step 10 twice (the second report wins), then errored.
    index += 1
    params = {
        "teacher": "l",
        "student": "xs",
        "teacher_params": 64000,
        "student_params": 1000,
        "ratio": 64.0,
        "lr": 3e-2,
        "adapter_rank": 0,
        "trainable_params": 10,
        "seed": 0,
        "max_steps": 20,
    }
    states.append(write_trial(exp, index, params, [metrics(10, 1.0, 0.99), metrics(10, 2.0, 0.98)], "ERROR"))
    if partial:  # a running trial with one evaluation so far, and a pending one with none
        index += 1
        states.append(write_trial(exp, index, {**params, "lr": 5e-4}, [metrics(10, 3.0, 0.5)], "RUNNING"))
    state = {
        "trial_data": [[json.dumps({"trial_id": t, "status": s}), "{}"] for t, s in states],
        "runner_data": {},
    }
    (exp / "experiment_state-2026-11-24_09-00-00.json").write_text(
        json.dumps(
            {"trial_data": [[json.dumps({"trial_id": t, "status": "PENDING"}), "{}"] for t, _ in states]}
        )
    )
    (exp / "experiment_state-2026-11-24_10-00-00.json").write_text(json.dumps(state))
    (exp / "mmkd").mkdir()
    (exp / "mmkd" / "result.json").write_text("not a trial\n")
    return truth
