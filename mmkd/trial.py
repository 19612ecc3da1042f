"""One trial: distil a student from a finetuned teacher, evaluate it zero-shot, report to Ray Tune.

Ray Tune calls ``tune_trial`` for every trial of a sweep; for debugging, the same recipe runs
without Ray::

    mmkd trial run sweeps/quickstart.yaml --lr 3e-3 --rank 0 --student s --out /tmp/trial

``config`` is a plain dict: the searched values (``lr``, ``adapter_rank``, ``teacher``, ``student``, and
their parameter counts and ``ratio``), the resolved sweep (``sweep``) and the prepared artefacts
(``artefacts``: model and teacher directories). The recipe, top-down:

1. setup — data, teacher (frozen), student (optionally language-adapted first: ``train.lapt``; then peft
   LoRA of rank r, or fully finetuned when r = 0), optimiser, Accelerate; resume from the latest
   checkpoint when there is one;
2. loop — deterministic batches (the batch of step k is a function of k, so a resumed trial sees exactly
   the batches it would have seen), loss = task cross-entropy + weighted distillation terms;
3. every ``eval_every`` steps — greedy generation on every language's dev set, chrF, the task's own
   metric (F1/EM for QA, entity F1 for NER; its primary metric is ``eval/score``) and wrong-language
   rate, per-example scores to ``mmkd_examples/<step>.jsonl``, one report — with a checkpoint when
   ``train.checkpoint_every_s`` has passed since the last one, and always at the last step.
"""

from __future__ import annotations

import json
import math
import os
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

from mmkd import checkpoint, ranks
from mmkd.config import DistillConfig, SweepConfig, from_dict
from mmkd.data import Example, Task, get_task
from mmkd.data.collate import encode_batch, step_examples, token_spans
from mmkd.data.translation import TranslationPairs
from mmkd.distill.cache import CachedTeacher, LiveTeacher, TeacherOutputs
from mmkd.distill.losses import (
    MMKDHeads,
    masked_mean_pool,
    pool_spans,
    sentence_loss,
    structure_loss,
    token_kd_topk,
    triplet_kd,
    word_align_loss,
)
from mmkd.errors import UserInputError
from mmkd.eval.baselines import dev_sets
from mmkd.eval.evaluate import Evaluation, evaluate_model
from mmkd.eval.langid import get_langid
from mmkd.models import count_params, get_family, load_seq2seq, wrap_student
from mmkd.models.langcodes import tagged
from mmkd.models.lapt import adapt_to_task
from mmkd.schedule import warmup_cosine

EXAMPLES_DIR = "mmkd_examples"
ENCODER_LEVELS = ("word", "sentence", "structure", "triplet")
CHECKPOINT_DIR = "checkpoint"


class Session(Protocol):
    """Where a trial reports to: Ray Tune inside a sweep, a local folder for ``mmkd trial run``."""

    @contextmanager
    def restored(self) -> Iterator[Path | None]:
        """The folder of the latest checkpoint (holding ``checkpoint/``), or None for a fresh start."""
        ...

    def examples_dir(self) -> Path:
        """Where the per-example rows of each evaluation go; they reach the sweep's storage on their own,
        with or without a checkpoint."""
        ...

    def report(self, metrics: dict[str, Any], folder: Path | None) -> None:
        """Report metrics, with the folder to keep as this step's checkpoint when there is one."""
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
    # Training inputs as the family reads them (the tiny family's carry a target-language tag); dev
    # inputs stay plain: generation tells the model their language (mmkd.models.langcodes).
    train = tagged(family.name, task.examples("train", task.source_lang))
    dev = dev_sets(task)
    # Translations of the training examples by id: a task may translate only some of them (Tatoeba),
    # or none (QA), and then the student's encoder sees the English example itself.
    parallel = {
        lang: {e.id: e for e in tagged(family.name, task.examples("train", lang))}
        for lang in task.languages
        if lang != task.source_lang
    }
    aux_translation = float(config.get("aux_translation", train_cfg.aux_translation))  # searched or fixed
    n_aux = round(train_cfg.batch_size * aux_translation)
    pairs = TranslationPairs(task, task.languages, family.name) if n_aux else None

    # --- setup: models ---
    accelerator = Accelerator(
        gradient_accumulation_steps=train_cfg.grad_accum,
        mixed_precision=_precision(train_cfg.mixed_precision),
        **ranks.accelerator_options(),
    )
    distill = distill_settings(sweep, config)
    artefacts = config["artefacts"]
    base, tokenizer = load_seq2seq(artefacts["models"][config["student"]])
    lapt: dict[str, float] = {}
    if train_cfg.lapt is not None:  # language-adaptive pretraining: the whole student, before any adapter
        lapt = adapt_to_task(
            base.to(accelerator.device),
            tokenizer,
            task,
            train_cfg.lapt,
            max_len=train_cfg.max_source_len,
            seed=train_cfg.seed,
        )
    teacher: CachedTeacher | LiveTeacher
    if distill.cache:
        teacher = CachedTeacher(Path(artefacts["teacher_cache"][config["teacher"]]))
    else:
        teacher = LiveTeacher(
            load_seq2seq(artefacts["teachers"][config["teacher"]])[0].to(accelerator.device), distill.top_k
        )
    student = wrap_student(base, config["adapter_rank"], family.lora_targets)
    encoder_levels = [lvl for lvl in ENCODER_LEVELS if getattr(distill, lvl) > 0]
    # Heads map the student's hidden size to the teacher's; only the encoder-side levels need them.
    heads = MMKDHeads(base.config.d_model, teacher.hidden_size) if encoder_levels else None
    modules = {"student": student, **({"heads": heads} if heads is not None else {})}
    trainable = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        param_groups(modules, config["lr"], distill.heads_lr),
        lr=config["lr"],
        weight_decay=train_cfg.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(train_cfg.warmup_steps, train_cfg.max_steps)
    )
    # Aligned-field token spans of every training example, once (the teacher's side of the word level).
    train_spans = token_spans(tokenizer, train, train_cfg.max_source_len)

    # --- setup: resume ---
    step, rng = 0, None
    with session.restored() as folder:
        # A damaged checkpoint falls back to the previous one, or to step 0 (the new reports replace the
        # old ones step by step in the results table); ``resumed_from`` says which, in every report.
        meta, resumed_from = checkpoint.restore(folder, CHECKPOINT_DIR, modules, optimizer)
    if meta is not None:
        scheduler.load_state_dict(meta["scheduler"])
        step, rng = meta["step"], meta["rng"]
    student, optimizer, scheduler = accelerator.prepare(student, optimizer, scheduler)
    if heads is not None:
        heads = accelerator.prepare(heads)

    static = {
        "teacher": config["teacher"],
        "student": config["student"],
        "teacher_params": config["teacher_params"],
        "student_params": config["student_params"],
        "ratio": config["ratio"],
        "ratio_total": config.get("ratio_total", config["ratio"]),
        "method": config.get("method", "mmkd"),
        "stage": config.get("stage", "search"),
        "lr": config["lr"],
        "adapter_rank": config["adapter_rank"],
        "trainable_params": sum(p.numel() for p in trainable),  # the heads train with the student
        "heads_params": 0 if heads is None else count_params(heads),
        "seed": train_cfg.seed,
        "aux_translation": aux_translation,
        "max_steps": train_cfg.max_steps,
        "source_lang": task.source_lang,
        "low_resource_langs": ",".join(task.low_resource),
        "low_resource_group": task.low_resource_name,
        "lapt_steps": 0 if train_cfg.lapt is None else train_cfg.lapt.steps,
        "resumed_from": resumed_from,
        "workers": accelerator.num_processes if config.get("workers") else 0,  # 0: in the Tune actor
        "strategy": config.get("strategy", "in-actor"),
        **{f"lapt/{k}": v for k, v in lapt.items()},
    }
    langid = get_langid(sweep.eval.langid)
    sums: dict[str, float] = {}
    n_steps, train_seconds = 0, 0.0
    report: dict[str, Any] = {}
    last_checkpoint = time.monotonic()

    if rng is not None:  # only now: the setup above draws from the generators on every start
        rng.restore()

    # --- loop ---
    while step < train_cfg.max_steps:
        step += 1
        started = time.perf_counter()
        student.train()
        for micro in range(train_cfg.grad_accum):
            idx, examples = step_examples(
                train, step * train_cfg.grad_accum + micro, train_cfg.batch_size, train_cfg.seed, pairs, n_aux
            )
            idx, examples = ranks.rank_shard(idx, examples, accelerator)
            # The translation pairs (if any) come after the task examples: only the task rows are
            # distilled, the whole batch learns the cross-entropy.
            batch = _to(
                encode_batch(tokenizer, examples, train_cfg.max_source_len, train_cfg.max_target_len),
                accelerator.device,
            )
            examples = examples[: len(idx)]
            spans = train_spans[idx].to(accelerator.device)
            view = None
            if encoder_levels:
                view = _to(
                    _student_view(tokenizer, examples, parallel, distill, train_cfg, step, micro),
                    accelerator.device,
                )
            with accelerator.accumulate(student):
                task_rows = {k: v[: len(idx)] for k, v in batch.items()}
                total, terms = loss_step(
                    student, heads, batch, spans, teacher.outputs(idx, task_rows, spans), distill, view
                )
                accelerator.backward(total)
                optimizer_step(accelerator, trainable, optimizer, scheduler)
            for name, value in ranks.mean_over_ranks({"loss": total.item(), **terms}, accelerator).items():
                sums[name] = sums.get(name, 0.0) + value / train_cfg.grad_accum
        n_steps += 1
        train_seconds += time.perf_counter() - started

        # --- evaluate, report, checkpoint ---
        if step % train_cfg.eval_every == 0 or step == train_cfg.max_steps:
            if not ranks.is_main(accelerator):  # rank 0 evaluates, writes and checkpoints
                session.report({"step": step}, None)
                sums, n_steps, train_seconds = {}, 0, 0.0
                continue
            started = time.perf_counter()
            evaluation = evaluate_model(
                accelerator.unwrap_model(student), tokenizer, task, dev, sweep, langid
            )
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
            _write_examples(session.examples_dir() / f"{step:06d}.jsonl", step, evaluation)
            if static["stage"] == "confirm" and step == train_cfg.max_steps:
                report |= evaluate_test(
                    accelerator.unwrap_model(student), tokenizer, task, sweep, langid, step, session
                )
            if not train_cfg.checkpoint_due(step, time.monotonic() - last_checkpoint):
                session.report(report, None)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    checkpoint.save(
                        Path(tmp) / CHECKPOINT_DIR,
                        {name: accelerator.unwrap_model(m) for name, m in modules.items()},
                        optimizer,
                        {"step": step, "scheduler": scheduler.state_dict()},
                    )
                    session.report(report, Path(tmp))
                last_checkpoint = time.monotonic()
            sums, n_steps, train_seconds = {}, 0, 0.0
    return report


def loss_step(
    student: Any,
    heads: MMKDHeads | None,
    batch: dict[str, torch.Tensor],
    spans: torch.Tensor,
    teacher: TeacherOutputs,
    distill: DistillConfig,
    view: dict[str, torch.Tensor] | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Task cross-entropy plus every MMKD term with a weight > 0; returns (total, each term).

    ``view`` is what the student's encoder sees for the encoder-side levels: the translation of the
    teacher's input in parallel-input mode, else the same English input (its ``spans`` then align the
    fields). The teacher side always comes from the English input.
    """
    out = student(**batch)
    terms: dict[str, torch.Tensor] = {"task": out.loss}
    # The teacher speaks for the first rows (the task examples) up to its own target length; the rest
    # of the batch (translation pairs) and the padding past that length have no teacher.
    rows, length = teacher.topk_values.shape[:2]
    if distill.token > 0:
        terms["token"] = token_kd_topk(
            out.logits[:rows, :length],
            teacher.topk_values,
            teacher.topk_indices,
            batch["labels"][:rows, :length],
            distill.temperature,
        )
    if view is not None and heads is not None:
        if distill.parallel:
            states = (
                ranks.unwrapped(student)
                .get_encoder()(input_ids=view["input_ids"], attention_mask=view["attention_mask"])
                .last_hidden_state
            )
        else:
            states = out.encoder_last_hidden_state[:rows]
        pooled = masked_mean_pool(states, view["attention_mask"])
        t_sentence = teacher.sentence.float()
        if distill.word > 0:
            valid = (view["spans"][..., 1] > view["spans"][..., 0]) & (spans[..., 1] > spans[..., 0])
            terms["word"] = word_align_loss(
                pool_spans(states, view["spans"]),
                teacher.words.float(),
                valid,
                heads.word,
                distill.word_loss,
                distill.word_temperature,
            )
        if distill.sentence > 0:
            terms["sentence"] = sentence_loss(pooled, t_sentence, heads.projector, heads.predictor)
        if distill.structure > 0:
            terms["structure"] = structure_loss(pooled, t_sentence, distill.structure_temperature)
        if distill.triplet > 0:
            terms["triplet"] = triplet_kd(heads.projector(pooled), t_sentence)
    total = torch.stack([getattr(distill, name) * value for name, value in terms.items()]).sum()
    return total, {name: value.item() for name, value in terms.items()}


def param_groups(
    modules: dict[str, torch.nn.Module], lr: float, heads_lr: float | None
) -> list[dict[str, Any]]:
    """One optimiser group per module's trainable tensors: the heads at ``heads_lr`` (None: ``lr``), the
    rest at ``lr``. The LambdaLR schedule multiplies every group's own lr by the same factor."""
    return [
        {
            "params": [p for p in m.parameters() if p.requires_grad],
            "lr": heads_lr if name == "heads" and heads_lr is not None else lr,
        }
        for name, m in modules.items()
    ]


def optimizer_step(
    accelerator: Accelerator,
    params: list[torch.Tensor],
    optimizer: Any,
    scheduler: Any,
    max_norm: float = 1.0,
) -> None:
    """Clip, step and zero inside ``accelerator.accumulate``. Accelerate's prepared optimiser and scheduler
    do nothing until the last micro-batch of a step (``sync_gradients``); clipping must wait for it too, or
    it would clip the partial sums of the earlier micro-batches instead of the step's gradient."""
    if accelerator.sync_gradients:
        accelerator.clip_grad_norm_(params, max_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def distill_settings(sweep: SweepConfig, config: dict[str, Any]) -> DistillConfig:
    """The sweep's distillation settings with this trial's searched values (``distill.<key>``), less the
    loss terms its ``method`` leaves out (``none``: the task loss alone, the no-distillation control)."""
    searched = {k.removeprefix("distill."): v for k, v in config.items() if k.startswith("distill.")}
    return sweep.distill.model_copy(update=searched).for_method(config.get("method", "mmkd"))


def _student_view(
    tokenizer: Any,
    examples: list[Example],
    parallel: dict[str, dict[str, Example]],
    distill: DistillConfig,
    train_cfg: Any,
    step: int,
    micro: int,
) -> dict[str, torch.Tensor]:
    """The student's encoder input for the encoder-side levels: each example's translation into a
    language drawn for it among those that translate it (a function of the step, like the batch), or the
    example itself."""
    if distill.parallel:
        rng = random.Random(f"{train_cfg.seed}:{step}:{micro}:parallel")
        views = []
        for e in examples:
            langs = sorted(lang for lang, by_id in parallel.items() if e.id in by_id)
            views.append(parallel[rng.choice(langs)][e.id] if langs else e)
        examples = views
    view = encode_batch(tokenizer, examples, train_cfg.max_source_len, train_cfg.max_target_len)
    return {
        "input_ids": view["input_ids"],
        "attention_mask": view["attention_mask"],
        "spans": token_spans(tokenizer, examples, train_cfg.max_source_len),
    }


def _to(tensors: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in tensors.items()}


def evaluate_test(
    model: Any, tokenizer: Any, task: Task, sweep: SweepConfig, langid: Any, step: int, session: Session
) -> dict[str, float]:
    """The confirm stage's last evaluation, on the test split of every language (never seen by the
    search): the dev metrics' keys as ``test/...``, its per-example rows in ``test-<step>.jsonl``."""
    test = {lang: task.examples("test", lang) for lang in task.languages}
    evaluation = evaluate_model(model, tokenizer, task, test, sweep, langid)
    _write_examples(session.examples_dir() / f"test-{step:06d}.jsonl", step, evaluation)
    return {f"test/{k.removeprefix('eval/')}": v for k, v in evaluation.metrics.items()}


def _precision(setting: str) -> str:
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _write_examples(path: Path, step: int, evaluation: Evaluation) -> None:
    """Per-example scores of one evaluation (the curves bootstrap over them); atomic replace, so a
    resumed trial that evaluates a step again replaces its rows whole."""
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
    from mmkd.distill.cache import ensure_cache
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

    teacher_dir = ensure_teacher(out / "teachers", teacher, source(teacher), sweep)
    config = {
        "lr": lr,
        "adapter_rank": rank,
        "teacher": teacher,
        "student": student,
        "teacher_params": family.size(teacher).params,
        "student_params": family.size(student).params,
        "ratio": family.ratio(teacher, student, sweep.family.ratio_basis),
        "ratio_total": family.ratio(teacher, student, "total"),
        "method": sweep.search.method[-1],
        "sweep": sweep.model_dump(mode="json"),
        "artefacts": {
            "models": {student: source(student)},
            "teachers": {teacher: str(teacher_dir)},
            "teacher_cache": {teacher: str(ensure_cache(teacher_dir, sweep, out / "teacher-cache"))},
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

    def examples_dir(self) -> Path:
        # Tune runs each trial in its own working directory and, with SyncConfig(sync_artifacts=True) (the
        # runner's), copies it to the trial's storage folder at every checkpoint and when the trial ends —
        # also when it is stopped early, whose last evaluation may have no checkpoint.
        if os.environ.get("RAY_CHDIR_TO_TRIAL_DIR", "1") == "0":
            raise RuntimeError("mmkd needs Ray's per-trial working directory: unset RAY_CHDIR_TO_TRIAL_DIR")
        return Path.cwd() / EXAMPLES_DIR

    def report(self, metrics: dict[str, Any], folder: Path | None) -> None:
        from ray.tune import Checkpoint

        from mmkd.sweep import telemetry

        telemetry.report_trial(metrics)  # live gauges first: Tune may end a stopped trial inside report
        self._tune.report(
            metrics, checkpoint=None if folder is None else Checkpoint.from_directory(str(folder))
        )


@dataclass
class LocalSession:
    """``mmkd trial run``: reports to stdout and ``<dir>/result.jsonl``; keeps the latest checkpoint and
    the per-example rows in ``<dir>``, so running the same command again resumes."""

    trial_dir: Path

    @contextmanager
    def restored(self) -> Iterator[Path | None]:
        yield self.trial_dir if (self.trial_dir / CHECKPOINT_DIR).is_dir() else None

    def examples_dir(self) -> Path:
        return self.trial_dir / EXAMPLES_DIR

    def report(self, metrics: dict[str, Any], folder: Path | None) -> None:
        self.trial_dir.mkdir(parents=True, exist_ok=True)
        if folder is not None:
            shutil.rmtree(self.trial_dir / CHECKPOINT_DIR, ignore_errors=True)
            shutil.copytree(folder / CHECKPOINT_DIR, self.trial_dir / CHECKPOINT_DIR)
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
