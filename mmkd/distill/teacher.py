"""Teacher preparation: each teacher size a sweep needs, finetuned once on the source-language task.

A teacher is finetuned in full on the source-language training split and saved with ``save_pretrained``
under ``<experiment>/mmkd/teachers/<size>-<hash>/``; the hash covers the base model, the task, the
finetuning settings and the seed, so a changed teacher is rebuilt and an unchanged one is reused (on
resume, too). It is finetuned in the model cache (``$MMKD_CACHE/teachers/<size>-<hash>/``, next to the
zoo) and copied into the sweep, so a later sweep with the same teacher copies it instead of finetuning.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mmkd.atomic import build_dir_once, model_dir_complete
from mmkd.atomic import write_text as atomic_write
from mmkd.config import SweepConfig, TrialConfig
from mmkd.data import get_task
from mmkd.models import load_seq2seq
from mmkd.models.zoo import cache_root
from mmkd.trial import CHECKPOINT_DIR, FolderSession, Recipe

DONE_FILE = "mmkd_teacher.json"


def teacher_dir(root: Path, size: str, base: str, sweep: SweepConfig) -> Path:
    key = json.dumps(
        [
            base,
            _base_fingerprint(base),
            sweep.task.name,
            sweep.task_options(),
            sweep.teacher.content(),
            sweep.train.max_source_len,
            sweep.train.max_target_len,
            sweep.train.seed,
        ],
        sort_keys=True,
    )
    return root / f"{size}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _base_fingerprint(base: str) -> str:
    """The zoo's build record for local models (changes when the model is rebuilt), else the id."""
    record = Path(base) / "mmkd_zoo.json"
    return record.read_text() if record.is_file() else base


def ensure_teacher(
    root: Path, size: str, base: str, sweep: SweepConfig, progress: Callable[[int, float], None] | None = None
) -> Path:
    final = teacher_dir(root, size, base, sweep)
    complete = model_dir_complete(DONE_FILE)

    def build(work: Path) -> None:
        # A killed build left ``work`` (resumable): finished but not yet renamed, or checkpointed.
        if not complete(work):
            stats = finetune(base, sweep, work, progress, size=size, name=final.name)
            evaluation(work, sweep)  # right after finetuning, kept with the weights: the teacher's baseline
            atomic_write(work / DONE_FILE, json.dumps({"size": size, "base": base, **stats}))
        shutil.rmtree(work / CHECKPOINT_DIR, ignore_errors=True)  # the finetuning's, not the teacher's
        if sweep.teacher_workers() >= 1:  # its Train run's checkpoints: the model and AdamW state, twice
            from mmkd.sweep.train_run import teacher_run_dir

            shutil.rmtree(teacher_run_dir(sweep, final.name), ignore_errors=True)

    if complete(final):  # resume: the sweep's own copy, whatever the model cache holds now
        return final
    cached = build_dir_once(cache_root() / "teachers" / final.name, build, complete, resumable=True)
    return build_dir_once(final, lambda work: shutil.copytree(cached, work, dirs_exist_ok=True), complete)


def evaluation(teacher: Path, sweep: SweepConfig) -> dict[str, float]:
    """The teacher's evaluation on the sweep's dev sets (``teacher:<size>`` in baselines.csv): stored in
    the teacher's folder under a name keyed by the evaluation settings, computed when not there yet."""
    key = json.dumps([sweep.eval.model_dump(), sweep.task_options()], sort_keys=True)
    path = teacher / f"mmkd_eval-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
    if path.is_file():
        metrics: dict[str, float] = json.loads(path.read_text())
        return metrics
    from mmkd.eval.baselines import dev_sets
    from mmkd.eval.evaluate import evaluate_model
    from mmkd.eval.langid import get_langid

    task = get_task(sweep.task.name, **sweep.task_options())
    model, tokenizer = load_seq2seq(teacher)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result = evaluate_model(
        model.to(device), tokenizer, task, dev_sets(task), sweep, get_langid(sweep.eval.langid)
    )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result.metrics))
    tmp.replace(path)
    return result.metrics


def finetune(
    base: str,
    sweep: SweepConfig,
    out_dir: Path,
    progress: Callable[[int, float], None] | None = None,
    *,
    size: str = "teacher",
    name: str = "teacher",
) -> dict[str, Any]:
    """Full finetuning of ``base`` with the trial's recipe (mmkd.trial.Recipe) on the task cross-entropy
    alone (on the task examples and, with ``teacher.aux_translation``, translation pairs in every batch),
    bf16 where the device supports it; saves model + tokenizer to ``out_dir``.

    With ``sweep.teacher_workers()`` >= 1 (``size``: the plan's teacher, ``name``: its folder) it is a
    Ray Train run of that many workers (mmkd.sweep.train_run.teacher_trainer) whose checkpoints are
    Train's; else one process that checkpoints into ``out_dir/checkpoint`` every
    ``teacher.checkpoint_every`` steps. Either resumes from its last checkpoint when run again."""
    if sweep.teacher_workers() >= 1:
        return _finetune_on_workers(base, sweep, out_dir, size, name)
    steps = 0

    def on_step(step: int, loss: float) -> None:
        nonlocal steps
        steps += 1
        if progress is not None:
            progress(step, loss)

    recipe = Recipe(TrialConfig.teacher_finetune(sweep, base), FolderSession(out_dir), on_step)
    start = time.perf_counter()
    last = recipe.run()
    seconds = time.perf_counter() - start
    recipe.save_model(out_dir)
    return {
        # the mean over the steps since the previous checkpoint (NaN: resumed at the last step)
        "final_loss": last.get("train/loss", float("nan")),
        "seconds": seconds,
        "seconds_per_step": seconds / max(1, steps),  # the steps of this run (after a resume: fewer)
        "resumed_from": recipe.resumed_from,
    }


def _finetune_on_workers(
    base: str, sweep: SweepConfig, out_dir: Path, size: str, name: str
) -> dict[str, Any]:
    from mmkd.sweep.train_run import teacher_trainer

    start = time.perf_counter()
    result = teacher_trainer(sweep, size, base, name).fit()
    seconds = time.perf_counter() - start
    if result.checkpoint is None or not result.metrics.get("final"):
        raise RuntimeError(f"teacher {name}: its Train run ended without reporting the finetuned model")
    result.checkpoint.to_directory(str(out_dir))
    return {
        "final_loss": result.metrics["train/loss"],
        "seconds": seconds,
        "seconds_per_step": seconds / sweep.teacher.steps,  # of this run, setup included
        "workers": sweep.teacher_workers(),
        "resumed_from": result.metrics["resumed_from"],
    }
