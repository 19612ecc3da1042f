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
    """Token spans [B, W, 2] (start, end exclusive) of each example's aligned fields (``Example.spans``), as
    positions in the encoder input ``encode_batch`` makes: after any special tokens the tokenizer puts
    first (NLLB-200 and mBART-50 open with a language token).

    Fast tokenizers place a field by the character offsets of that real encoding: exact. Slow ones (ByT5)
    count the tokens of the text before each offset, after the leading special tokens: exact for
    byte-level tokenizers, within a token of the truth for subword ones. Spans past the truncation point
    are clipped (and become empty).
    """
    width = max((len(e.spans) for e in examples), default=0)
    out = torch.zeros(len(examples), width, 2, dtype=torch.long)
    fast = bool(getattr(tokenizer, "is_fast", False))
    for b, e in enumerate(examples):
        enc = tokenizer(
            e.source,
            max_length=max_source_len,
            truncation=True,
            return_special_tokens_mask=True,
            return_offsets_mapping=fast,
        )
        text = [i for i, special in enumerate(enc["special_tokens_mask"]) if not special]
        first, stop = (text[0], text[-1] + 1) if text else (0, 0)
        offsets = [(i, *enc["offset_mapping"][i]) for i in text] if fast else []
        for w, (start, end) in enumerate(e.spans):
            if fast:
                a, z = _span_by_offsets(offsets, start, end, stop)
            else:
                a = first + len(tokenizer(e.source[:start], add_special_tokens=False)["input_ids"])
                z = first + len(tokenizer(e.source[:end], add_special_tokens=False)["input_ids"])
            out[b, w] = torch.tensor([min(a, stop), min(z, stop)])
    return out


def _span_by_offsets(tokens: list[tuple[int, int, int]], start: int, end: int, stop: int) -> tuple[int, int]:
    """The positions of the (position, char start, char end) text tokens that overlap [start, end); (stop,
    stop) when none does (the field was truncated away)."""
    inside = [i for i, a, z in tokens if a < end and z > start] if start < end else []
    return (inside[0], inside[-1] + 1) if inside else (stop, stop)
