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
from mmkd.config import SweepConfig
from mmkd.data import get_task
from mmkd.data.collate import encode_batch, step_examples
from mmkd.data.translation import TranslationPairs
from mmkd.models import load_seq2seq
from mmkd.models.langcodes import tagged
from mmkd.models.zoo import cache_root
from mmkd.schedule import warmup_cosine

DONE_FILE = "mmkd_teacher.json"


def teacher_dir(root: Path, size: str, base: str, sweep: SweepConfig) -> Path:
    key = json.dumps(
        [
            base,
            _base_fingerprint(base),
            sweep.task.name,
            sweep.task_options(),
            sweep.teacher.model_dump(),
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
        stats = finetune(base, sweep, work, progress)
        evaluation(work, sweep)  # right after finetuning, kept with the weights: the teacher's baseline
        (work / DONE_FILE).write_text(json.dumps({"size": size, "base": base, **stats}))

    if complete(final):  # resume: the sweep's own copy, whatever the model cache holds now
        return final
    cached = build_dir_once(cache_root() / "teachers" / final.name, build, complete)
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
    base: str, sweep: SweepConfig, out_dir: Path, progress: Callable[[int, float], None] | None = None
) -> dict[str, Any]:
    """Full finetuning with the task cross-entropy (on the task examples and, with
    ``teacher.aux_translation``, translation pairs in every batch); saves model + tokenizer to
    ``out_dir``."""
    torch.manual_seed(sweep.train.seed)
    task = get_task(sweep.task.name, **sweep.task_options())
    train = tagged(sweep.family.name, task.examples("train", task.source_lang))
    settings = sweep.teacher
    n_aux = round(settings.batch_size * settings.aux_translation)
    pairs = TranslationPairs(task, task.languages, sweep.family.name) if n_aux else None
    model, tokenizer = load_seq2seq(base)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, warmup_cosine(min(50, settings.steps // 10), settings.steps)
    )
    start, loss_value = time.perf_counter(), float("nan")
    for step in range(1, settings.steps + 1):
        _, examples = step_examples(train, step, settings.batch_size, sweep.train.seed, pairs, n_aux)
        batch = encode_batch(tokenizer, examples, sweep.train.max_source_len, sweep.train.max_target_len)
        loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if progress is not None:
            progress(step, loss_value)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    seconds = time.perf_counter() - start
    return {"final_loss": loss_value, "seconds": seconds, "seconds_per_step": seconds / settings.steps}
