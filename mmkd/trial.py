"""One trial: distil a student from a finetuned teacher, evaluate it zero-shot, report to Ray Tune.

Ray Tune calls ``tune_trial`` for every trial of a sweep; for debugging, the same recipe runs
without Ray::

    mmkd trial run quickstart --lr 3e-3 --rank 0 --student s --out /tmp/trial

A trial is a ``TrialConfig`` (mmkd.config: the searched values, the sweep and the prepared artefacts,
resolved in one place) run by ``Recipe``, which reports to a ``Session``. The same recipe finetunes the
teachers (mmkd.distill.teacher: the task loss alone, checkpoints, no evaluation). Top-down:

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast, broadcast_object_list

from mmkd import catchup, checkpoint, ranks, reporting, sharding
from mmkd.config import DISTILL_LEVELS, Artefacts, DistillConfig, SweepConfig, TrainConfig, TrialConfig
from mmkd.data import Example, get_task
from mmkd.data.collate import encode_batch, step_examples, token_spans
from mmkd.data.parallel import ParallelCorpus
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
ENCODER_LEVELS = DISTILL_LEVELS[1:]  # every level but the token level reads the student's encoder
CHECKPOINT_DIR = catchup.CHECKPOINT_DIR  # inside Tune's checkpoint_<n>, with checkpoint.META_FILE


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

    def resumed(self, step: int) -> None:
        """Called once the trial has loaded the checkpoint of ``step`` (0: a fresh start), before it
        trains: re-send the reports up to ``step`` that whoever receives them has lost."""
        ...


# ---------------------------------------------------------------------------------------------------
# The recipe
# ---------------------------------------------------------------------------------------------------


def run(config: TrialConfig, session: Session) -> dict[str, Any]:
    """Run one trial to its end (or until the scheduler stops it); returns the last report."""
    return Recipe(config, session).run()


class Recipe:
    """One training run: a trial (distil, evaluate, report) or a teacher's finetuning (the task loss
    alone, checkpoints only). ``on_step(step, loss)`` is called after every optimiser step."""

    def __init__(
        self, config: TrialConfig, session: Session, on_step: Callable[[int, float], None] | None = None
    ) -> None:
        self.config, self.session, self.on_step = config, session, on_step
        self.train_cfg = config.train
        self.step, self.resumed_from = 0, ""
        self.sums: dict[str, float] = {}
        self.n_steps, self.train_seconds = 0, 0.0
        self.last_checkpoint = time.monotonic()

    def run(self) -> dict[str, Any]:
        """Setup (resuming from the session's latest checkpoint), then train; every ``eval_every`` steps
        and at the last one: evaluate (a trial) and report, with a checkpoint when one is due."""
        self.setup()
        self.session.resumed(self.step)
        report: dict[str, Any] = {}
        while self.step < self.train_cfg.max_steps:
            loss = self.train_step()
            if self.on_step is not None:
                self.on_step(self.step, loss)
            if self.step % self.train_cfg.eval_every == 0 or self.step == self.train_cfg.max_steps:
                report = self.report(*self.evaluate()) if ranks.is_main(self.accelerator) else self._follow()
        return report

    # --- setup ---

    def setup(self) -> None:
        random.seed(self.train_cfg.seed)
        torch.manual_seed(self.train_cfg.seed)
        self._setup_data()
        self._setup_models()
        self.load()

    def _setup_data(self) -> None:
        sweep, family = self.config.sweep, self.config.sweep.family.name
        self.task = task = get_task(sweep.task.name, **sweep.task_options())
        # Training inputs as the family reads them (the tiny family's carry a target-language tag); dev
        # inputs stay plain: generation tells the model their language (mmkd.models.langcodes).
        self.train = tagged(family, task.examples("train", task.source_lang))
        self.dev = dev_sets(task) if self.config.evaluates else {}
        # Translations of the training examples by id: a task may translate only some of them (Tatoeba),
        # or none (QA), and then the student's encoder sees the English example itself.
        self.parallel = {
            lang: {e.id: e for e in tagged(family, task.examples("train", lang))}
            for lang in task.languages
            if lang != task.source_lang
        }
        self.n_aux = round(self.train_cfg.batch_size * self.config.aux_translation)
        self.pairs = TranslationPairs(task, task.languages, family) if self.n_aux else None
        # A parallel corpus (task.parallel_source: flores, tatoeba) replaces the task's examples on the
        # encoder-side levels: its English sentences follow the training examples in the teacher's cache.
        distils = self.config.distill.parallel and self.config.teacher_model is not None
        self.corpus = task.parallel_corpus() if distils else None

    def _setup_models(self) -> None:
        config, train_cfg, distill = self.config, self.train_cfg, self.config.distill
        self.accelerator = Accelerator(
            gradient_accumulation_steps=train_cfg.grad_accum,
            mixed_precision=_precision(train_cfg.mixed_precision),
            **ranks.accelerator_options(),
        )
        base, self.tokenizer = load_seq2seq(config.student_model)
        self.lapt: dict[str, float] = {}
        if train_cfg.lapt is not None:  # language-adaptive pretraining: the whole student, before any adapter
            self.lapt = adapt_to_task(
                base.to(self.accelerator.device), self.tokenizer, self.task, train_cfg.lapt,
                max_len=train_cfg.max_source_len, seed=train_cfg.seed,
            )  # fmt: skip
        self.teacher = self._teacher()
        self.student = wrap_student(
            base, config.adapter_rank, get_family(config.sweep.family.name).lora_targets
        )
        self.sharded = config.strategy == "fsdp"
        if self.sharded:  # before the optimiser: it must hold the sharded parameters
            if not torch.distributed.is_initialized():
                raise ValueError(
                    "strategy fsdp needs the process group of a Ray Train run (resources.workers)"
                )
            self.student = sharding.shard(
                self.student, self.accelerator.device, _precision(train_cfg.mixed_precision)
            )
        self.encoder_levels = [lvl for lvl in ENCODER_LEVELS if getattr(distill, lvl) > 0]
        # Heads map the student's hidden size to the teacher's; only the encoder-side levels need them.
        self.heads = (
            MMKDHeads(base.config.d_model, self.teacher.hidden_size)
            if self.encoder_levels and self.teacher is not None
            else None
        )
        self.modules = {"student": self.student, **({"heads": self.heads} if self.heads is not None else {})}
        self.trainable = [p for m in self.modules.values() for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            param_groups(self.modules, config.lr, distill.heads_lr),
            lr=config.lr,
            weight_decay=train_cfg.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(train_cfg.warmup_steps, train_cfg.max_steps)
        )
        # Aligned-field token spans of every training example, once (the teacher's side of the word level).
        if self.teacher is not None:
            self.train_spans = token_spans(self.tokenizer, self.train, train_cfg.max_source_len)

    def _teacher(self) -> CachedTeacher | LiveTeacher | None:
        """The teacher's outputs: read from its cache (``distill.cache``), or computed by it live."""
        config = self.config
        if config.distill.cache and config.teacher_model is not None and config.teacher_cache is None:
            raise ValueError(f"distill.cache is on but no teacher cache was prepared for {config.teacher}")
        if config.teacher_cache is not None:
            return CachedTeacher(Path(config.teacher_cache))
        if config.teacher_model is not None:
            model = load_seq2seq(config.teacher_model)[0].to(self.accelerator.device)
            return LiveTeacher(model, config.distill.top_k)
        if any(getattr(config.distill, level) > 0 for level in DISTILL_LEVELS):
            raise ValueError(f"{config.method}: distillation without a teacher")
        return None

    # --- checkpoints ---

    def load(self) -> None:
        """Resume from the session's latest checkpoint (if any), then hand the modules to Accelerate."""
        rng = None
        with self.session.restored() as folder:
            # A damaged checkpoint falls back to the previous one, or to step 0 (the new reports replace
            # the old ones step by step in the results table); ``resumed_from`` says which.
            meta, self.resumed_from = checkpoint.restore(
                folder, CHECKPOINT_DIR, self.modules, self.optimizer,
                sharding.load_full_state if self.sharded else None,
            )  # fmt: skip
        if meta is not None:
            self.scheduler.load_state_dict(meta["scheduler"])
            self.step, rng = meta["step"], meta["rng"]
        acc = self.accelerator
        self.torch_optimizer = self.optimizer  # what a sharded checkpoint gathers from (the wrapper hides it)
        if self.sharded:
            # Not given to Accelerate: its prepare would wrap the sharded student in DDP (its own FSDP plugin
            # exists only for GPUs, and one code path serves CPU and GPU: mmkd.sharding). Accelerate keeps
            # the device, backward and the optimiser and scheduler wrappers (gradient accumulation).
            self.optimizer, self.scheduler = acc.prepare(self.optimizer, self.scheduler)
        else:
            self.student, self.optimizer, self.scheduler = acc.prepare(
                self.student, self.optimizer, self.scheduler
            )
        if self.heads is not None:
            # Never given to Accelerate, whatever the layout: with several workers it would wrap them in DDP,
            # which hides the parts the losses call (word, projector, predictor) and, outside the wrapper's
            # own forward, would not average their gradients. So the workers start from rank 0's heads and
            # average the heads' gradients after every backward (both no-ops for one process).
            self.heads = self.heads.to(acc.device)
            for tensor in self.heads.state_dict().values():
                broadcast(tensor)
        self.metadata = self._metadata()
        self.langid = get_langid(self.config.sweep.eval.langid) if self.config.evaluates else None
        if rng is not None:  # only now: the setup above draws from the generators on every start
            rng.restore()

    def save(self, folder: Path | None) -> None:
        """The trainable tensors, the optimiser, the step, the schedule and the random generators, written
        by rank 0 to ``folder``. Sharded, every rank calls it (``folder`` None but on rank 0): the full
        tensors are gathered from all of them."""
        meta = {"step": self.step, "scheduler": self.scheduler.state_dict()}
        if self.sharded:
            tensors, optimizer = sharding.full_state(self.modules, self.torch_optimizer)
            if folder is not None:
                checkpoint.write(folder / CHECKPOINT_DIR, tensors, optimizer, meta)
            return
        assert folder is not None
        unwrapped = {name: self.accelerator.unwrap_model(m) for name, m in self.modules.items()}
        checkpoint.save(folder / CHECKPOINT_DIR, unwrapped, self.optimizer, meta)

    def save_model(self, folder: Path | None) -> None:
        """The student and its tokenizer as ``load_seq2seq`` reads them (``save_pretrained``), written by
        rank 0 to ``folder`` (a finetuned teacher). Sharded, every rank calls it (``folder`` None but on
        rank 0): the full weights are gathered from all of them to rank 0's CPU memory."""
        model = self.accelerator.unwrap_model(self.student)
        state = sharding.full_model(model) if self.sharded else None
        if folder is not None:
            model.save_pretrained(folder, state_dict=state)
            self.tokenizer.save_pretrained(folder)

    # --- train, evaluate, report ---

    def train_step(self) -> float:
        """One optimiser step (``grad_accum`` micro-batches); returns its loss."""
        self.step += 1
        started = time.perf_counter()
        self.student.train()
        loss = 0.0
        for micro in range(self.train_cfg.grad_accum):
            total, terms = self._micro_step(micro)
            for name, value in ranks.mean_over_ranks({"loss": total, **terms}, self.accelerator).items():
                self.sums[name] = self.sums.get(name, 0.0) + value / self.train_cfg.grad_accum
            loss += total / self.train_cfg.grad_accum
        self.n_steps += 1
        self.train_seconds += time.perf_counter() - started
        return loss

    def _micro_step(self, micro: int) -> tuple[float, dict[str, float]]:
        cfg, device = self.train_cfg, self.accelerator.device
        idx, examples = step_examples(
            self.train, self.step * cfg.grad_accum + micro, cfg.batch_size, cfg.seed, self.pairs, self.n_aux
        )
        idx, examples = ranks.rank_shard(idx, examples, self.accelerator)  # this worker's share
        # The translation pairs (if any) come after the task examples: only the task rows are distilled,
        # the whole batch learns the cross-entropy.
        batch = _to(encode_batch(self.tokenizer, examples, cfg.max_source_len, cfg.max_target_len), device)
        examples = examples[: len(idx)]
        spans, outputs, view = None, None, None
        if self.teacher is not None:
            spans = self.train_spans[idx].to(device)
            task_rows = {k: v[: len(idx)] for k, v in batch.items()}
            outputs = self.teacher.outputs(idx, task_rows, spans)
        encoder = None
        if self.encoder_levels and self.corpus is not None and self.teacher is not None:
            pairs_step = (cfg.seed, self.step * cfg.grad_accum + micro, len(idx))
            view, encoder = _corpus_view(
                self.tokenizer, self.config.sweep.family.name, self.corpus, pairs_step,
                len(self.train), self.teacher, cfg, device,
            )  # fmt: skip
        elif self.encoder_levels:
            view = _student_view(
                self.tokenizer, examples, self.parallel, self.config.distill, cfg, self.step, micro
            )
            view = _to(view, device)
        with self.accelerator.accumulate(self.student):
            if self.sharded:  # FSDP's own no_sync: reduce-scatter only on a step's last micro-batch
                self.student.set_requires_gradient_sync(self.accelerator.sync_gradients)
            total, terms = loss_step(
                self.student, self.heads, batch, spans, outputs, self.config.distill, view, encoder
            )
            self.accelerator.backward(total)
            if self.heads is not None:
                average_gradients(self.accelerator, self.heads)
            optimizer_step(
                self.accelerator, self.trainable, self.optimizer, self.scheduler, sharded=self.sharded
            )
        return total.item(), terms

    def evaluate(self) -> tuple[Evaluation | None, float]:
        """Greedy generation on every language's dev set, scored; its per-example rows are written to
        ``mmkd_examples/<step>.jsonl``. Returns it and its seconds (None for a teacher's finetuning)."""
        if self.langid is None:  # not self.config.evaluates
            return None, 0.0
        started = time.perf_counter()
        evaluation = self._evaluate_on(self.dev)
        seconds = time.perf_counter() - started
        if ranks.is_main(self.accelerator):
            _write_examples(self.session.examples_dir() / f"{self.step:06d}.jsonl", self.step, evaluation)
        return evaluation, seconds

    def _evaluate_on(self, examples: dict[str, list[Example]]) -> Evaluation:
        """The student's evaluation on ``examples``. Sharded, every rank generates the same outputs in
        lockstep (HF's ``synced_gpus``, made for FSDP and ZeRO-3), each block's parameters gathered for
        each forward: no rank ever holds the whole model, but generation takes as long as on one worker
        plus an all-gather of every block per generated token, and every rank scores (rank 0 reports)."""
        assert self.langid is not None, "a trial that evaluates"
        model = self.accelerator.unwrap_model(self.student)
        args = (self.tokenizer, self.task, examples, self.config.sweep, self.langid)
        if not self.sharded:
            return evaluate_model(model, *args)
        with sharding.gathered_root(model):
            return evaluate_model(model, *args, synced_gpus=True)

    def report(self, evaluation: Evaluation | None, eval_seconds: float) -> dict[str, Any]:
        """Report the evaluation (the confirm stage's last one adds the test split), with a checkpoint
        when ``train.checkpoint_every_s`` has passed since the last one, and always at the last step."""
        metrics = report_metrics(
            self.step, self.sums, self.n_steps, self.train_seconds, self.metadata, evaluation, eval_seconds
        )
        last = self.step == self.train_cfg.max_steps
        if self.config.stage == "confirm" and last:
            metrics |= self._evaluate_test()
        sent = metrics
        if evaluation is not None:  # what Tune needs to the session, the rest to <step>.metrics.json
            sweep = self.config.sweep
            keep = reporting.tune_keys(sweep.search, sweep.stop)
            sent = reporting.set_aside(metrics, self.session.examples_dir(), keep)
        if not self._checkpoint_due():
            self.session.report(sent, None)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                self.save(Path(tmp))
                self.session.report(sent, Path(tmp))
            self.last_checkpoint = time.monotonic()
        self.sums, self.n_steps, self.train_seconds = {}, 0, 0.0
        return metrics

    def _checkpoint_due(self) -> bool:
        """Whether this report carries a checkpoint: rank 0's clock decides, for every rank when sharded
        (the checkpoint is gathered from all)."""
        due = [self.train_cfg.checkpoint_due(self.step, time.monotonic() - self.last_checkpoint)]
        if self.sharded:
            broadcast_object_list(due)
        return bool(due[0])

    def _follow(self) -> dict[str, Any]:
        """A worker other than rank 0 at an evaluation step: rank 0 evaluates, writes and checkpoints;
        this one reports its step only (Train's reports are collective). Sharded, every forward and the
        checkpoint's gathering need every rank: this one takes part in them, in rank 0's order."""
        if self.sharded:
            self.evaluate()
            if self.config.stage == "confirm" and self.step == self.train_cfg.max_steps:
                self._evaluate_test()
            if self._checkpoint_due():
                self.save(None)
        self.session.report({"step": self.step}, None)
        self.sums, self.n_steps, self.train_seconds = {}, 0, 0.0
        return {}

    def _metadata(self) -> dict[str, Any]:
        """What every report of the trial carries besides its step, losses and evaluation."""
        lapt = self.train_cfg.lapt
        return {
            **reporting.metadata(self.config, reporting.Languages.of_task(self.task)),
            "trainable_params": sum(p.numel() for p in self.trainable),  # the heads train with the student
            "heads_params": 0 if self.heads is None else count_params(self.heads),
            "lapt_steps": 0 if lapt is None else lapt.steps,
            "resumed_from": self.resumed_from,
            "workers": self.accelerator.num_processes if self.config.workers else 0,  # 0: in the Tune actor
            "strategy": self.config.strategy,
            **{f"lapt/{k}": v for k, v in self.lapt.items()},
        }

    def _evaluate_test(self) -> dict[str, float]:
        """The confirm stage's last evaluation, on the test split of every language (never seen by the
        search): the dev metrics' keys as ``test/...``, its per-example rows in ``test-<step>.jsonl``."""
        test = {lang: self.task.examples("test", lang) for lang in self.task.languages}
        evaluation = self._evaluate_on(test)
        if ranks.is_main(self.accelerator):
            _write_examples(
                self.session.examples_dir() / f"test-{self.step:06d}.jsonl", self.step, evaluation
            )
        return {f"test/{k.removeprefix('eval/')}": v for k, v in evaluation.metrics.items()}


def report_metrics(
    step: int,
    sums: dict[str, float],
    n_steps: int,
    train_seconds: float,
    metadata: dict[str, Any],
    evaluation: Evaluation | None,
    eval_seconds: float,
) -> dict[str, Any]:
    """One report: the mean losses since the last one, the trial's metadata, the evaluation, timings."""
    return reporting.build(
        step,
        {k: v / n_steps for k, v in sums.items()},
        metadata,
        {} if evaluation is None else evaluation.metrics,
        () if evaluation is None else evaluation.unreliable_langs,
        **{"time/train_step_s": train_seconds / n_steps, "time/eval_s": eval_seconds},
    )


def loss_step(
    student: Any,
    heads: MMKDHeads | None,
    batch: dict[str, torch.Tensor],
    spans: torch.Tensor | None,
    teacher: TeacherOutputs | None,
    distill: DistillConfig,
    view: dict[str, torch.Tensor] | None,
    encoder: tuple[TeacherOutputs, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Task cross-entropy plus every MMKD term with a weight > 0; returns (total, each term).

    ``view`` is what the student's encoder sees for the encoder-side levels: the translation of the
    teacher's input in parallel-input mode, else the same English input (its ``spans`` then align the
    fields). The teacher side always comes from the English input: the batch's, or, when ``encoder``
    gives the teacher's outputs and token spans for other rows (a parallel corpus's English sentences,
    which ``view`` translates), those. Without a teacher (a teacher's own finetuning) the task loss is
    the only term.
    """
    out = student(**batch)
    terms: dict[str, torch.Tensor] = {"task": out.loss}
    if teacher is None or spans is None:
        total = distill.task * out.loss
        return total, {"task": out.loss.item()}
    t_encoder, t_spans = encoder if encoder is not None else (teacher, spans)
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
                .last_hidden_state.float()  # fp32 for the heads, as the root's own outputs (sharded, bf16)
            )
        else:
            states = out.encoder_last_hidden_state[:rows]
        terms |= _encoder_terms(states, view, t_encoder, t_spans, heads, distill)
    total = torch.stack([getattr(distill, name) * value for name, value in terms.items()]).sum()
    return total, {name: value.item() for name, value in terms.items()}


def _encoder_terms(
    states: torch.Tensor,
    view: dict[str, torch.Tensor],
    teacher: TeacherOutputs,
    spans: torch.Tensor,
    heads: MMKDHeads,
    distill: DistillConfig,
) -> dict[str, torch.Tensor]:
    """The encoder-side levels with a weight > 0 (word, sentence, structure, triplet): the student's
    encoder ``states`` over ``view`` against the teacher's words and sentence on their English side."""
    terms: dict[str, torch.Tensor] = {}
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
    return terms


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


def average_gradients(accelerator: Accelerator, module: torch.nn.Module) -> None:
    """The mean over the workers of the gradients of ``module``, a module outside DDP; a parameter one
    worker did not use counts as a zero gradient there, so that every worker makes the same calls."""
    if accelerator.num_processes == 1:
        return
    for p in module.parameters():
        if p.requires_grad:
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            p.grad = accelerator.reduce(grad, reduction="mean")


def optimizer_step(
    accelerator: Accelerator,
    params: list[torch.Tensor],
    optimizer: Any,
    scheduler: Any,
    max_norm: float = 1.0,
    sharded: bool = False,
) -> None:
    """Clip, step and zero inside ``accelerator.accumulate``. Accelerate's prepared optimiser and scheduler
    do nothing until the last micro-batch of a step (``sync_gradients``); clipping must wait for it too, or
    it would clip the partial sums of the earlier micro-batches instead of the step's gradient. ``sharded``:
    the student's gradients are DTensors, which Accelerate's clipping cannot mix with the heads'."""
    if accelerator.sync_gradients and sharded:
        accelerator.unscale_gradients()
        sharding.clip_grad_norm_(params, max_norm)
    elif accelerator.sync_gradients:
        accelerator.clip_grad_norm_(params, max_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _student_view(
    tokenizer: Any,
    examples: list[Example],
    parallel: dict[str, dict[str, Example]],
    distill: DistillConfig,
    train_cfg: TrainConfig,
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


def _corpus_view(
    tokenizer: Any,
    family: str,
    corpus: ParallelCorpus,
    pairs_step: tuple[int, int, int],
    n_train: int,
    teacher: CachedTeacher | LiveTeacher,
    train_cfg: Any,
    device: torch.device,
) -> tuple[dict[str, torch.Tensor], tuple[TeacherOutputs, torch.Tensor]]:
    """The encoder-side levels' inputs from a parallel corpus: the student's view of the translations of
    the step's pairs (``corpus.for_step(*pairs_step)``), and the teacher's outputs and token spans on their
    English sentences (cache rows ``n_train + row``)."""
    rows, english, translations = corpus.for_step(*pairs_step)
    english, translations = tagged(family, english), tagged(family, translations)
    lens = (train_cfg.max_source_len, train_cfg.max_target_len)
    eng_spans = token_spans(tokenizer, english, lens[0]).to(device)
    outputs = teacher.outputs(
        [n_train + r for r in rows], _to(encode_batch(tokenizer, english, *lens), device), eng_spans
    )
    view = encode_batch(tokenizer, translations, *lens)
    view = {k: view[k] for k in ("input_ids", "attention_mask")}
    view["spans"] = token_spans(tokenizer, translations, lens[0])
    return _to(view, device), (outputs, eng_spans)


def _to(tensors: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in tensors.items()}


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

    sweep = load(sweep_file, overrides)
    family = get_family(sweep.family.name)
    teacher = teacher or sweep.search.teacher[0]
    student = student or sweep.search.student[0]
    if family.size(teacher).params <= family.size(student).params:
        raise UserInputError(f"--teacher {teacher} is not larger than --student {student}")
    if lr is None:
        space = sweep.search.lr
        if isinstance(space, list):
            space = space[len(space) // 2]
        lr = math.sqrt(space.low * space.high) if isinstance(space, LogRange) else space
    searched = {
        "lr": lr,
        "adapter_rank": sweep.search.adapter_rank[0] if rank is None else rank,
        "teacher": teacher,
        "student": student,
        "teacher_params": family.size(teacher).params,
        "student_params": family.size(student).params,
        "ratio": family.ratio(teacher, student, sweep.family.ratio_basis),
        "ratio_total": family.ratio(teacher, student, "total"),
        "method": sweep.search.method[-1],
    }
    artefacts = _local_artefacts(sweep, teacher, student, out)
    return run(TrialConfig.build(searched, sweep, artefacts), LocalSession(out))


def _local_artefacts(sweep: SweepConfig, teacher: str, student: str, out: Path) -> Artefacts:
    """The student's model, the finetuned teacher and its output cache, built or found in the caches."""
    from mmkd.distill.cache import ensure_cache
    from mmkd.distill.teacher import ensure_teacher
    from mmkd.models.zoo import ensure_built

    family = get_family(sweep.family.name)

    def source(size: str) -> str:
        src = family.size(size).source
        if src.startswith("zoo:"):
            return str(ensure_built(src.removeprefix("zoo:"), sweep.family.zoo))
        return src

    teacher_dir = ensure_teacher(out / "teachers", teacher, source(teacher), sweep)
    return Artefacts(
        models={student: source(student)},
        teachers={teacher: str(teacher_dir)},
        teacher_cache={teacher: str(ensure_cache(teacher_dir, sweep, out / "teacher-cache"))},
    )


def tune_trial(searched: dict[str, Any], sweep: SweepConfig, artefacts: Artefacts) -> None:
    """The Ray Tune trainable: ``searched`` holds the searched values; the sweep and its artefacts come
    through ``tune.with_parameters`` so they stay out of trial names and the searcher's state."""
    config = TrialConfig.build(searched, sweep, artefacts)
    run(config, TuneSession(config))


class TuneSession:
    """Reports to Ray Tune. Restores from the newest checkpoint in the trial's storage folder whose
    reports are on record, which is newer than the one Tune restored when the driver was killed after
    Tune's last snapshot; then re-sends Tune the reports it lost (mmkd.catchup)."""

    def __init__(self, config: TrialConfig) -> None:
        from ray import tune

        self._tune, self._train = tune, config.train
        self._folder = catchup.trial_folder(config, Path(tune.get_context().get_trial_dir()).name)
        self._tune_step = 0  # the step of the checkpoint Tune restored

    @contextmanager
    def restored(self) -> Iterator[Path | None]:
        with checkpoint_folder(self._tune.get_checkpoint()) as path:
            self._tune_step = 0 if path is None else catchup.saved_step(path) or 0
            newer = catchup.newer(self._folder, self._tune_step, self._train)
            yield path if newer is None else newer.folder

    def resumed(self, step: int) -> None:
        for report in catchup.lost_reports(self._folder, self._tune_step, step, self._train):
            self.report(report, None)

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


@contextmanager
def checkpoint_folder(ckpt: Any) -> Iterator[Path | None]:
    """A Ray Tune or Train checkpoint (``get_checkpoint()``) as a local folder; None without one."""
    if ckpt is None:
        yield None
        return
    with ckpt.as_directory() as path:
        yield Path(path)


@dataclass
class FolderSession:
    """Keeps the latest checkpoint in ``<dir>/checkpoint`` and reports nothing: a teacher's finetuning
    (mmkd.distill.teacher), which resumes from it when run again."""

    trial_dir: Path

    @contextmanager
    def restored(self) -> Iterator[Path | None]:
        latest, old = self.trial_dir / CHECKPOINT_DIR, self.trial_dir / f".{CHECKPOINT_DIR}.old"
        if not latest.is_dir() and old.is_dir():  # killed while swapping in a newer one
            old.rename(latest)
        yield self.trial_dir if latest.is_dir() else None

    def examples_dir(self) -> Path:
        return self.trial_dir / EXAMPLES_DIR

    def resumed(self, step: int) -> None:
        """Nothing to re-send: the checkpoint is the whole record of a teacher's finetuning, and
        ``result.jsonl`` of ``mmkd trial run`` keeps every report written."""

    def report(self, metrics: dict[str, Any], folder: Path | None) -> None:
        self.trial_dir.mkdir(parents=True, exist_ok=True)
        if folder is None:
            return
        # Copied beside, then swapped in by renames: a kill at any moment leaves a whole checkpoint.
        new, old = (self.trial_dir / f".{CHECKPOINT_DIR}.{what}" for what in ("new", "old"))
        shutil.rmtree(new, ignore_errors=True)
        shutil.move(folder / CHECKPOINT_DIR, new)  # a rename on one filesystem: no second copy of a teacher
        if (self.trial_dir / CHECKPOINT_DIR).is_dir():
            shutil.rmtree(old, ignore_errors=True)
            (self.trial_dir / CHECKPOINT_DIR).rename(old)
        new.rename(self.trial_dir / CHECKPOINT_DIR)
        shutil.rmtree(old, ignore_errors=True)


@dataclass
class LocalSession(FolderSession):
    """``mmkd trial run``: reports to stdout and ``<dir>/result.jsonl``; keeps the latest checkpoint and
    the per-example rows in ``<dir>``, so running the same command again resumes."""

    def report(self, metrics: dict[str, Any], folder: Path | None) -> None:
        super().report(metrics, folder)
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
