"""Language-adaptive pretraining (LAPT; Chau & Smith, 2021, arXiv 2106.09063), an optional trial stage.

Before distillation, the student continues its pretraining objective — T5 span corruption, the same code
that pretrains the tiny family (``mmkd.models.zoo``) — on unlabelled text in the languages it will be
evaluated in, so that it knows them better before it is finetuned on English alone. Turned on per sweep::

    train:
      lapt: {steps: 200, languages: targets, lr: 1.0e-3}

The text is the task's pretraining corpus (``Task.corpus``): the built-in task's multilingual corpus; for
the XTREME-R tasks the unlabelled side of each language's dev pool (QA contexts, sentences) — never test
data. ``languages: targets`` means every evaluation language but the source. Every weight of the student
is updated (as in Chau & Smith), before a LoRA adapter, if any, is put on top. The stage is seeded by the
trial's seed, so a trial resumed from a checkpoint repeats it and gets the same adapted model.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from typing import Any

import torch

from mmkd.config import LAPTConfig
from mmkd.data.base import Task
from mmkd.models.zoo import encode_corpus, sentinel_ids, span_corruption_batch, train_span_corruption


def lapt_languages(task: Task, languages: Sequence[str] | str) -> list[str]:
    """The languages of the stage: ``"targets"`` = the task's evaluation languages but the source."""
    if languages == "targets":
        return [lang for lang in task.languages if lang != task.source_lang]
    return list(languages)


def lapt_corpus(task: Task, languages: Sequence[str]) -> list[str]:
    """The task's corpus in ``languages``, interleaved line by line so every batch mixes them."""
    per_lang = [task.corpus(lang) for lang in languages]
    return [line for group in zip(*per_lang, strict=False) for line in group]


def adapt(
    model: Any,
    tokenizer: Any,
    corpus: Sequence[str],
    *,
    steps: int,
    lr: float,
    batch_size: int,
    max_len: int,
    seed: int,
    noise_density: float = 0.15,
    mean_span: float = 3.0,
) -> dict[str, float]:
    """Continue span-corruption pretraining of ``model`` (in place, every weight) on ``corpus`` for
    ``steps`` AdamW steps; returns ``loss_start`` (first step), ``loss_end`` (mean of the last tenth of
    the steps) and ``seconds``. The model is left in train mode on its device."""
    encoded = encode_corpus(tokenizer, corpus, max_len)
    if not encoded:
        raise ValueError("LAPT corpus has no line of 4 tokens or more")
    torch.manual_seed(seed)
    params = list(model.parameters())
    was_trainable = [p.requires_grad for p in params]
    model.requires_grad_(True)
    losses: list[float] = []
    start = time.perf_counter()
    train_span_corruption(
        model,
        tokenizer,
        encoded,
        random.Random(f"{seed}:lapt"),
        steps=steps,
        lr=lr,
        weight_decay=0.0,
        warmup_steps=max(1, steps // 10),
        batch_size=batch_size,
        noise_density=noise_density,
        mean_span=mean_span,
        on_step=lambda _, loss: losses.append(loss),
    )
    for p, trainable in zip(params, was_trainable, strict=True):
        p.requires_grad_(trainable)
    tail = losses[-max(1, steps // 10) :]
    return {
        "loss_start": losses[0] if losses else math.nan,
        "loss_end": sum(tail) / len(tail) if tail else math.nan,
        "seconds": time.perf_counter() - start,
    }


@torch.no_grad()
def span_corruption_loss(
    model: Any,
    tokenizer: Any,
    corpus: Sequence[str],
    *,
    max_len: int,
    seed: int = 0,
    batches: int = 4,
    batch_size: int = 16,
    noise_density: float = 0.15,
    mean_span: float = 3.0,
) -> float:
    """Mean span-corruption loss of ``model`` on ``corpus`` over fixed (seeded) corruptions: the same
    batches for every model, so two models' values compare."""
    encoded = encode_corpus(tokenizer, corpus, max_len)
    rng = random.Random(f"{seed}:lapt-eval")
    sentinels, eos, pad = sentinel_ids(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    for _ in range(batches):
        inputs, labels = span_corruption_batch(
            encoded, rng, sentinels, batch_size, noise_density, mean_span, eos, pad
        )
        inputs, labels = inputs.to(device), labels.to(device)
        total += model(input_ids=inputs, attention_mask=inputs.ne(pad), labels=labels).loss.item()
    model.train(was_training)
    return total / batches


def adapt_to_task(
    model: Any, tokenizer: Any, task: Task, lapt: LAPTConfig, *, max_len: int, seed: int
) -> dict[str, float]:
    """The trial's LAPT stage: ``adapt`` on the task's corpus in the configured languages."""
    corpus = lapt_corpus(task, lapt_languages(task, lapt.languages))
    return adapt(
        model,
        tokenizer,
        corpus,
        steps=lapt.steps,
        lr=lapt.lr,
        batch_size=lapt.batch_size,
        max_len=max_len,
        seed=seed,
        noise_density=lapt.noise_density,
        mean_span=lapt.mean_span,
    )
