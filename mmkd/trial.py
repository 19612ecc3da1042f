"""One trial: distil a student from a finetuned teacher, evaluate it zero-shot, report to Ray Tune.

Ray Tune calls ``tune_trial`` for every trial of a sweep; for debugging, the same recipe runs
without Ray::

    mmkd trial run sweeps/quickstart.yaml --set trial.lr=3e-3 --set trial.student=s --out /tmp/trial

``config`` is a plain dict: the searched values (``lr``, ``adapter_rank``, ``teacher``, ``student``, and
their parameter counts and ``ratio``), the resolved sweep (``sweep``) and the prepared artefacts
(``artefacts``: model and teacher directories). The recipe, top-down:

1. setup — data, teacher (frozen), student (peft LoRA of rank r, or fully finetuned when r = 0),
   optimiser, Accelerate; resume from the latest checkpoint when there is one;
2. loop — deterministic batches (the batch of step k is a function of k, so a resumed trial sees exactly
   the batches it would have seen), loss = task cross-entropy + weighted distillation terms;
3. every ``eval_every`` steps — greedy generation on every language's dev set, chrF and wrong-language
   rate, per-example scores to ``mmkd_examples.jsonl``, a checkpoint, one report.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator

from mmkd import checkpoint
from mmkd.config import SweepConfig, from_dict
from mmkd.data import Example, Task, get_task
from mmkd.data.collate import batch_indices, encode_batch
from mmkd.distill.losses import token_kd
from mmkd.errors import UserInputError
from mmkd.eval.evaluate import Evaluation, evaluate_outputs
from mmkd.eval.generate import generate
from mmkd.eval.langid import get_langid
from mmkd.models import count_params, get_family, load_seq2seq, wrap_student
from mmkd.models.zoo import warmup_cosine

EXAMPLES_FILE = "mmkd_examples.jsonl"
CHECKPOINT_DIR = "checkpoint"


class Session(Protocol):
    """Where a trial reports to: Ray Tune inside a sweep, a local folder for ``mmkd trial run``."""

    @contextmanager
    def restored(self) -> Iterator[Path | None]:
        """The folder of the latest checkpoint (holding ``checkpoint/``), or None for a fresh start."""
        ...

    def report(self, metrics: dict[str, Any], folder: Path) -> None:
        """Report metrics with the folder to keep as this step's checkpoint."""
        ...


# ---------------------------------------------------------------------------------------------------
# The recipe
# ---------------------------------------------------------------------------------------------------


def run(config: dict[str, Any], session: Session) -> dict[str, Any]:
    """Run one trial to its end (or until the scheduler stops it); returns the last report."""
    sweep = from_dict(config["sweep"], source="trial config")
    train_cfg, family = sweep.train, get_family(sweep.family.name)
    random.seed(train_cfg.seed)
    torch.manual_seed(train_cfg.seed)

    # --- setup: data ---
    task = get_task(sweep.task.name, **sweep.task_options())
    train = task.examples("train", task.source_lang)
    dev = {lang: task.examples("dev", lang) for lang in task.languages}

    # --- setup: models ---
    accelerator = Accelerator(
        gradient_accumulation_steps=train_cfg.grad_accum,
        mixed_precision=_precision(train_cfg.mixed_precision),
    )
    teacher, tokenizer = load_seq2seq(config["artefacts"]["teachers"][config["teacher"]])
    teacher.eval().requires_grad_(False)
    base, _ = load_seq2seq(config["artefacts"]["models"][config["student"]])
    student = wrap_student(base, config["adapter_rank"], family.lora_targets)
    trainable = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config["lr"], weight_decay=train_cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(train_cfg.warmup_steps, train_cfg.max_steps)
    )

    # --- setup: resume ---
    step = 0
    with session.restored() as folder:
        if folder is not None:
            meta = checkpoint.load(folder / CHECKPOINT_DIR, {"student": student}, optimizer)
            scheduler.load_state_dict(meta["scheduler"])
            step = meta["step"]
    student, teacher, optimizer = accelerator.prepare(student, teacher, optimizer)

    static = {
        "teacher": config["teacher"],
        "student": config["student"],
        "teacher_params": config["teacher_params"],
        "student_params": config["student_params"],
        "ratio": config["ratio"],
        "lr": config["lr"],
        "adapter_rank": config["adapter_rank"],
        "trainable_params": count_params(student, trainable_only=True),
        "seed": train_cfg.seed,
        "max_steps": train_cfg.max_steps,
        "source_lang": task.source_lang,
        "low_resource_langs": ",".join(task.low_resource),
    }
    langid = get_langid(sweep.eval.langid)
    sums: dict[str, float] = {}
    n_steps, train_seconds = 0, 0.0
    report: dict[str, Any] = {}

    # --- loop ---
    while step < train_cfg.max_steps:
        step += 1
        started = time.perf_counter()
        student.train()
        for micro in range(train_cfg.grad_accum):
            idx = batch_indices(
                len(train), step * train_cfg.grad_accum + micro, train_cfg.batch_size, train_cfg.seed
            )
            batch = encode_batch(
                tokenizer, [train[i] for i in idx], train_cfg.max_source_len, train_cfg.max_target_len
            )
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.accumulate(student):
                total, terms = loss_step(student, teacher, batch, sweep)
                accelerator.backward(total)
                accelerator.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            for name, value in {"loss": total.item(), **terms}.items():
                sums[name] = sums.get(name, 0.0) + value / train_cfg.grad_accum
        n_steps += 1
        train_seconds += time.perf_counter() - started

        # --- evaluate, checkpoint, report ---
        if step % train_cfg.eval_every == 0 or step == train_cfg.max_steps:
            started = time.perf_counter()
            evaluation = evaluate(accelerator.unwrap_model(student), tokenizer, task, dev, sweep, langid)
            report = {
                "step": step,
                **{
                    ("train/loss" if k == "loss" else f"train/loss_{k}"): v / n_steps for k, v in sums.items()
                },
                **static,
                **evaluation.metrics,
                "unreliable_langs": ",".join(evaluation.unreliable_langs),
                "time/train_step_s": train_seconds / n_steps,
                "time/eval_s": time.perf_counter() - started,
            }
            # The per-example rows travel with the checkpoint: they reach the sweep's storage wherever the
            # trial ran, and they always belong to the step of the checkpoint next to them.
            with tempfile.TemporaryDirectory() as tmp:
                checkpoint.save(
                    Path(tmp) / CHECKPOINT_DIR,
                    {"student": accelerator.unwrap_model(student)},
                    optimizer,
                    {"step": step, "scheduler": scheduler.state_dict()},
                )
                _write_examples(Path(tmp) / EXAMPLES_FILE, step, evaluation)
                session.report(report, Path(tmp))
            sums, n_steps, train_seconds = {}, 0, 0.0
    return report


def loss_step(
    student: Any, teacher: Any, batch: dict[str, torch.Tensor], sweep: SweepConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Task cross-entropy plus every distillation term with a weight > 0; returns (total, each term)."""
    out = student(**batch)
    weights = sweep.distill
    terms: dict[str, torch.Tensor] = {"task": out.loss}
    if weights.token > 0:
        with torch.no_grad():
            teacher_logits = teacher(**batch).logits
        terms["token"] = token_kd(
            out.logits, teacher_logits, batch["labels"], temperature=weights.temperature
        )
    total = torch.stack([getattr(weights, name) * value for name, value in terms.items()]).sum()
    return total, {name: value.item() for name, value in terms.items()}


def evaluate(
    model: Any, tokenizer: Any, task: Task, dev: dict[str, list[Example]], sweep: SweepConfig, langid: Any
) -> Evaluation:
    outputs = {
        lang: generate(
            model,
            tokenizer,
            [e.source for e in examples],
            batch_size=sweep.eval.batch_size,
            max_new_tokens=sweep.eval.max_new_tokens,
            max_source_len=sweep.train.max_source_len,
        )
        for lang, examples in dev.items()
    }
    return evaluate_outputs(
        outputs,
        {lang: [e.target for e in examples] for lang, examples in dev.items()},
        {lang: [e.id for e in examples] for lang, examples in dev.items()},
        source_lang=task.source_lang,
        low_resource=task.low_resource,
        langid=langid,
        tau=sweep.eval.tau,
    )


def _precision(setting: str) -> str:
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _write_examples(path: Path, step: int, evaluation: Evaluation) -> None:
    """Per-example scores of the latest evaluation (the curves bootstrap over them); atomic replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in evaluation.examples:
            f.write(json.dumps({"step": step, **row}, ensure_ascii=False) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------------------------------


def run_local(
    sweep_file: str,
    overrides: list[str],
    out: Path,
    *,
    lr: float | None = None,
    rank: int | None = None,
    teacher: str | None = None,
    student: str | None = None,
) -> dict[str, Any]:
    """``mmkd trial run``: one trial in this process, artefacts prepared (or found cached) first."""
    from mmkd.config import LogRange, load
    from mmkd.distill.teacher import ensure_teacher
    from mmkd.models.zoo import ZooSettings, ensure_built

    sweep = load(sweep_file, overrides)
    family = get_family(sweep.family.name)
    teacher = teacher or sweep.search.teacher[0]
    student = student or sweep.search.student[0]
    if family.size(teacher).params <= family.size(student).params:
        raise UserInputError(f"--teacher {teacher} is not larger than --student {student}")
    if lr is None:
        space = sweep.search.lr
        lr = math.sqrt(space.low * space.high) if isinstance(space, LogRange) else space
    rank = sweep.search.adapter_rank[0] if rank is None else rank

    def source(size: str) -> str:
        src = family.size(size).source
        if src.startswith("zoo:"):
            return str(ensure_built(src.removeprefix("zoo:"), ZooSettings(**sweep.family.zoo.model_dump())))
        return src

    config = {
        "lr": lr,
        "adapter_rank": rank,
        "teacher": teacher,
        "student": student,
        "teacher_params": family.size(teacher).params,
        "student_params": family.size(student).params,
        "ratio": family.ratio(teacher, student),
        "sweep": sweep.model_dump(mode="json"),
        "artefacts": {
            "models": {student: source(student)},
            "teachers": {teacher: str(ensure_teacher(out / "teachers", teacher, source(teacher), sweep))},
        },
    }
    return run(config, LocalSession(out))


def tune_trial(config: dict[str, Any], sweep: dict[str, Any], artefacts: dict[str, Any]) -> None:
    """The Ray Tune trainable: ``config`` holds the searched values; the sweep-wide constants come
    through ``tune.with_parameters`` so they stay out of trial names and the searcher's state."""
    run({**config, "sweep": sweep, "artefacts": artefacts}, TuneSession())


class TuneSession:
    def __init__(self) -> None:
        from ray import tune

        self._tune = tune

    @contextmanager
    def restored(self) -> Iterator[Path | None]:
        ckpt = self._tune.get_checkpoint()
        if ckpt is None:
            yield None
            return
        with ckpt.as_directory() as path:
            yield Path(path)

    def report(self, metrics: dict[str, Any], folder: Path) -> None:
        from ray.tune import Checkpoint

        self._tune.report(metrics, checkpoint=Checkpoint.from_directory(str(folder)))


@dataclass
class LocalSession:
    """``mmkd trial run``: reports to stdout and ``<dir>/result.jsonl``; keeps the latest checkpoint and
    per-example file in ``<dir>``, so running the same command again resumes."""

    trial_dir: Path

    @contextmanager
    def restored(self) -> Iterator[Path | None]:
        yield self.trial_dir if (self.trial_dir / CHECKPOINT_DIR).is_dir() else None

    def report(self, metrics: dict[str, Any], folder: Path) -> None:
        self.trial_dir.mkdir(parents=True, exist_ok=True)
        for item in (CHECKPOINT_DIR, EXAMPLES_FILE):
            shutil.rmtree(self.trial_dir / item, ignore_errors=True)
        shutil.copytree(folder / CHECKPOINT_DIR, self.trial_dir / CHECKPOINT_DIR)
        shutil.copy2(folder / EXAMPLES_FILE, self.trial_dir / EXAMPLES_FILE)
        with (self.trial_dir / "result.jsonl").open("a") as f:
            f.write(json.dumps(metrics) + "\n")
        keys = (
            "step",
            "train/loss",
            "eval/source/chrf",
            "eval/score",
            "eval/zero_shot/wlr",
            "eval/low_resource/wlr",
        )
        print(
            "  ".join(
                f"{k}={metrics[k]:.4g}" if isinstance(metrics[k], float) else f"{k}={metrics[k]}"
                for k in keys
                if k in metrics
            ),
            flush=True,
        )
