"""Scale simulation: trials that follow a synthetic learning-curve and cost model instead of training.

    mmkd sweep run quickstart --simulate --set search.num_samples=2000 --set resources.gpu=1
    python benchmarks/simulate.py            # 2,000 trials on a local Ray cluster with 64 logical GPUs

Everything but the training is real: Ray Tune schedules ``simulated_trial`` with the sweep's resources,
Optuna proposes its configurations through the same define-by-run space, the WLR stopper and ASHA judge
its reports, it checkpoints to the sweep's storage (a small safetensors file and ``state.json``) when
``train.checkpoint_every_s`` says so and resumes from ``tune.get_checkpoint()``, and the results table and
``mmkd curves`` read it like any sweep (it writes no per-example rows: intervals span seeds only).
It takes the same config as ``mmkd.trial.tune_trial``, and its synthetic per-language numbers go through
the trial's own reporting code (``mmkd.reporting``; the contract is in docs/DESIGN.md: metadata, group
means, the objective, what goes to Tune and what to ``mmkd_examples/<step>.metrics.json``) every
``train.eval_every`` steps, plus ``simulated: 1`` and where it ran (``sim/node``, ``sim/gpu_ids``,
``sim/started``, ``sim/reported``).

The model (``evaluate``) is deterministic in (config, step, language) and encodes the known findings:
quality rises with training steps towards a ceiling set by the student's size, is best at a learning
rate near the optimum of its adapter (LoRA tolerates higher rates than full finetuning) and gains most
from distillation at a moderate teacher/student ratio (a capacity gap at large ratios); the wrong-language
rate rises with the learning rate and with training, is higher in low-resource languages, and is lower
with small adapter ranks (full finetuning, rank 0, forgets the most). Seeded noise is added per report.

Cost (``step_seconds``): a training step of a student as large as its teacher costs
``simulate.step_seconds`` (FLOPs scale with parameters, so a student costs ``step_seconds / ratio``),
plus a third of ``step_seconds`` (the teacher's forward pass) when the teacher is not cached; an
evaluation costs ``simulate.eval_seconds / ratio``. The trial sleeps that long, once per report.

This module must not import torch (or mmkd.trial / mmkd.models): simulated trial actors stay light.
"""

from __future__ import annotations

import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmkd import catchup, names, reporting
from mmkd.config import DISTILL_LEVELS, SweepConfig, TrialConfig
from mmkd.eval.task_metrics import get_task_metric
from mmkd.reporting import Languages

__all__ = ["Languages", "evaluate", "simulated_trial"]

CHECKPOINT_DIR, STATE_FILE = catchup.CHECKPOINT_DIR, catchup.STATE_FILE
TENSOR_FILE = "trainable.safetensors"

# Learning rates at which each kind of student learns best, and from which it drifts into the source
# language (the tiny family's regime: the quickstart searches 1e-4 .. 1e-2).
LR_OPT_FULL, LR_OPT_LORA = 1e-3, 3e-3
LR_DRIFT_FULL = 2e-3
SWEET_RATIO = 8.0
# A task metric's value as a share of chrF (QA's F1 and EM, NER's F1, the built-in task's exact answers).
TASK_KEY_SHARE = {"f1": 0.9, "em": 0.7, "exact": 0.1}


# ---------------------------------------------------------------------------------------------------
# The learning-curve model (pure functions of the trial config and the step)
# ---------------------------------------------------------------------------------------------------


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _rng(config: Mapping[str, Any], seed: int, *parts: object) -> random.Random:
    # A str seed is hashed with SHA-512 by `random`: the same in every process, unlike hash().
    key = "|".join(
        str(v) for v in (seed, repr(float(config["lr"])), config["adapter_rank"], config["teacher"])
    )
    return random.Random(f"{key}|{config['student']}|" + "|".join(map(str, parts)))


def learning_speed(lr: float, rank: int) -> float:
    """Effective steps per step: faster with the learning rate, saturating at 3x the optimum's speed."""
    return min(lr / (LR_OPT_FULL if rank == 0 else LR_OPT_LORA), 3.0)


def source_quality(config: Mapping[str, Any], step: int) -> float:
    """Noise-free chrF in the source language after ``step`` steps."""
    lr, rank = float(config["lr"]), int(config["adapter_rank"])
    ceiling = min(85.0, max(5.0, 20.0 + 12.0 * math.log10(float(config["student_params"]) / 1e4)))
    rank_factor = 1.0 if rank == 0 else 1.0 - 0.25 / math.sqrt(rank)
    lr_off = math.log10(lr / (LR_OPT_FULL if rank == 0 else LR_OPT_LORA)) / 0.6
    lr_factor = 0.3 + 0.7 * math.exp(-0.5 * lr_off**2)
    gap = math.log(float(config["ratio"]) / SWEET_RATIO)
    distill_gain = 1.0 + 0.1 * math.exp(-0.5 * gap**2)
    progress = 1.0 - math.exp(-step * learning_speed(lr, rank) / 60.0)
    return 5.0 + (ceiling * rank_factor * lr_factor * distill_gain - 5.0) * progress


def drift(config: Mapping[str, Any], step: int, low_resource: bool) -> float:
    """Noise-free wrong-language rate after ``step`` steps (before the per-language offset)."""
    lr, rank = float(config["lr"]), int(config["adapter_rank"])
    # Small adapters change the model least: their drift needs a higher learning rate.
    lr_drift = LR_DRIFT_FULL * (1.0 if rank == 0 else 1.0 + 4.0 / math.sqrt(rank))
    logit = 3.0 * math.log10(lr / lr_drift) + (0.8 if low_resource else 0.0)
    reached = 1.0 - math.exp(-step * learning_speed(lr, rank) / 40.0)
    return 0.1 + 0.9 * _sigmoid(logit) * reached


def evaluate(config: Mapping[str, Any], step: int, languages: Languages, seed: int = 0) -> dict[str, float]:
    """The evaluation metrics of a report at ``step``: synthetic per-language numbers, then the group
    means and the objective as a real evaluation computes them (``mmkd.reporting.group_means``)."""
    task_metric = get_task_metric(languages.metric)
    low = set(languages.low_resource)
    source_chrf = source_quality(config, step)
    metrics: dict[str, float] = {}
    for lang in languages.langs:
        rng = _rng(config, seed, step, lang)
        lang_rng = random.Random(f"lang|{lang}")  # fixed per language, the same in every trial
        if lang == languages.source:
            chrf, wlr = source_chrf + rng.gauss(0, 0.5), 0.02 + abs(rng.gauss(0, 0.01))
        else:
            is_low = lang in low
            base = drift(config, step, is_low)
            wlr = _sigmoid(math.log(base / (1 - base)) + lang_rng.uniform(-0.3, 0.3)) + rng.gauss(0, 0.02)
            transfer = (0.5 if is_low else 0.75) + lang_rng.uniform(-0.08, 0.08)
            chrf = source_chrf * transfer * (1 - 0.85 * min(max(wlr, 0.0), 1.0)) + rng.gauss(0, 0.5)
        wlr, chrf = min(max(wlr, 0.0), 1.0), min(max(chrf, 0.0), 100.0)
        metrics[names.key(lang, names.CHRF)] = chrf
        metrics[names.key(lang, names.WLR)] = wlr
        metrics[names.key(lang, names.SRC_RATE)] = 0.9 * wlr if lang != languages.source else 1 - wlr
        metrics[names.key(lang, names.UNDETERMINED)] = 0.05
        metrics[names.key(lang, names.LID_REF_ACC)] = 0.95 + lang_rng.uniform(0, 0.05)
        for key in task_metric.keys:
            metrics[names.key(lang, key)] = chrf * TASK_KEY_SHARE.get(key, 1.0)
    return metrics | reporting.group_means(
        metrics,
        languages.langs,
        source_lang=languages.source,
        low_resource=languages.low_resource,
        low_name=languages.low_name,
        task_keys=task_metric.keys,
        primary=task_metric.primary,
    )


def train_losses(
    config: Mapping[str, Any], step: int, weights: Mapping[str, float], seed: int = 0
) -> dict[str, float]:
    """The training loss by term, ``loss`` being the weighted total, for each term with a weight > 0:
    falling with steps."""
    lr, rank = float(config["lr"]), int(config["adapter_rank"])
    floor = 2.0 - source_quality(config, 10**6) / 50.0
    rng = _rng(config, seed, step, "loss")
    terms = {
        name: (floor + 3.0 * math.exp(-step * learning_speed(lr, rank) / 80.0))
        * (1.0 if name == "task" else 0.3)
        + abs(rng.gauss(0, 0.02))
        for name, w in weights.items()
        if w > 0
    }
    return {"loss": sum(weights[k] * v for k, v in terms.items()), **terms}


def step_seconds(trial: TrialConfig) -> tuple[float, float]:
    """(simulated seconds of one training step, of one evaluation) for this trial's student."""
    sim, ratio = trial.sweep.simulate, trial.ratio
    step = sim.step_seconds / ratio + (0.0 if trial.sweep.distill.cache else sim.step_seconds / 3)
    return step, sim.eval_seconds / ratio


# ---------------------------------------------------------------------------------------------------
# The trainable
# ---------------------------------------------------------------------------------------------------


def simulated_trial(config: dict[str, Any], sweep: SweepConfig, languages: Languages) -> None:
    """The Ray Tune trainable of ``--simulate``: same config and reports as ``mmkd.trial.tune_trial``."""
    import ray
    from ray import tune

    from mmkd.config import Artefacts
    from mmkd.sweep import telemetry

    trial = TrialConfig.build(config, sweep, Artefacts())
    train = trial.train
    keep = reporting.tune_keys(sweep.search, sweep.stop)
    # The method's terms only (``none``: the task loss alone), as the real trial computes them.
    weights = {k: float(getattr(trial.distill, k)) for k in ("task", *DISTILL_LEVELS)}
    rank = trial.adapter_rank
    static = {
        **reporting.metadata(trial, languages),
        # LoRA trains a small share of the weights (a synthetic share; the real trial counts them).
        "trainable_params": int(trial.student_params * (1.0 if rank == 0 else min(1.0, 0.004 * rank))),
        "simulated": 1,
        # Where the trial ran and on which (logical) GPUs: what the scale simulation checks placement by.
        "sim/node": ray.get_runtime_context().get_node_id(),
        "sim/gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
        "sim/started": time.time(),
    }
    # As the real trial does (mmkd.trial.TuneSession): continue from a checkpoint newer than Tune's, if
    # the trial made one after Tune's last snapshot, and re-send Tune the reports it lost.
    tune_step = restored_step(tune.get_checkpoint())
    folder = catchup.trial_folder(trial, Path(tune.get_context().get_trial_dir()).name)
    newer = catchup.newer(folder, tune_step, train)
    step = tune_step if newer is None else newer.step
    for lost in catchup.lost_reports(folder, tune_step, step, train):
        tune.report(lost)
    cost_step, cost_eval = step_seconds(trial)
    last_checkpoint = time.monotonic()
    while step < train.max_steps:
        target = min(train.max_steps, (step // train.eval_every + 1) * train.eval_every)
        n_steps, step = target - step, target
        train_s, eval_s = _sleep(cost_step * n_steps), _sleep(cost_eval)
        report = reporting.build(
            step,
            train_losses(config, step, weights, train.seed),
            static,
            evaluate(config, step, languages, train.seed),
            (),
            **{"time/train_step_s": train_s / n_steps, "time/eval_s": eval_s, "sim/reported": time.time()},
        )
        telemetry.report_trial(report)
        report = reporting.set_aside(report, Path.cwd() / reporting.EXAMPLES_DIR, keep)
        if not train.checkpoint_due(step, time.monotonic() - last_checkpoint):
            tune.report(report)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(Path(tmp) / CHECKPOINT_DIR, step)
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(tmp))
        last_checkpoint = time.monotonic()


def _sleep(seconds: float) -> float:
    started = time.perf_counter()
    if seconds > 0:
        time.sleep(seconds)
    return time.perf_counter() - started


def save_checkpoint(path: Path, step: int) -> None:
    """A small real checkpoint: a safetensors file (numpy, no torch) and ``state.json`` with the step."""
    import numpy as np
    from safetensors.numpy import save_file

    path.mkdir(parents=True)
    save_file({"weights": np.full(256, step, dtype=np.float32)}, str(path / TENSOR_FILE))
    (path / STATE_FILE).write_text(json.dumps({"step": step, "simulated": True}))


def restored_step(checkpoint: Any) -> int:
    """The step of the checkpoint Tune restored this trial from (0 without one, or a damaged one)."""
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        try:
            return int(json.loads((Path(folder) / CHECKPOINT_DIR / STATE_FILE).read_text())["step"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(
                f"mmkd: damaged checkpoint {folder} ({e}); restarting this trial from step 0", file=sys.stderr
            )
            return 0
