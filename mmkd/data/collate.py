"""Batches: deterministic sampling by step, and tokenisation into model inputs."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

from mmkd.data.base import Example


def batch_indices(n: int, step: int, batch_size: int, seed: int) -> list[int]:
    """The example indices of training step ``step``: a pure function of (seed, step), so a trial resumed
    at step k sees exactly the batches it would have seen without the interruption."""
    rng = random.Random(f"{seed}:{step}")
    return [rng.randrange(n) for _ in range(batch_size)]


def step_examples(
    train: Sequence[Example], step: int, batch_size: int, seed: int, pairs: Any = None, n_pairs: int = 0
) -> tuple[list[int], list[Example]]:
    """The examples of training step ``step``: ``batch_size - n_pairs`` task examples (their indices
    first, for the teacher's cache) followed by ``n_pairs`` translation pairs drawn from ``pairs``
    (``mmkd.data.translation.TranslationPairs``); a pure function of (seed, step)."""
    idx = batch_indices(len(train), step, batch_size - n_pairs, seed)
    extra = pairs.for_step(seed, step, n_pairs) if pairs is not None and n_pairs else []
    return idx, [train[i] for i in idx] + extra


def encode_batch(
    tokenizer: Any, examples: Sequence[Example], max_source_len: int, max_target_len: int
) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels (padding -> -100, ignored by the loss)."""
    enc = tokenizer(
        [e.source for e in examples],
        max_length=max_source_len,
        truncation=True,
        padding=True,
        return_tensors="pt",
    )
    labels = tokenizer(
        text_target=[e.target for e in examples],
        max_length=max_target_len,
        truncation=True,
        padding=True,
        return_tensors="pt",
    )["input_ids"]
    labels[labels == tokenizer.pad_token_id] = -100
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}


def token_spans(tokenizer: Any, examples: Sequence[Example], max_source_len: int) -> torch.Tensor:
    """Token spans [B, W, 2] (start, end exclusive) of each example's aligned fields (``Example.spans``).

    A character offset maps to the number of tokens of the text before it: exact for byte-level
    tokenizers (ByT5 and the tiny family), within a token of the truth for subword ones. Spans past the
    truncation point are clipped (and become empty).
    """
    width = max((len(e.spans) for e in examples), default=0)
    out = torch.zeros(len(examples), width, 2, dtype=torch.long)
    for b, e in enumerate(examples):
        for w, (start, end) in enumerate(e.spans):
            a = len(tokenizer(e.source[:start], add_special_tokens=False)["input_ids"])
            z = len(tokenizer(e.source[:end], add_special_tokens=False)["input_ids"])
            out[b, w] = torch.tensor([min(a, max_source_len), min(z, max_source_len)])
    return out
