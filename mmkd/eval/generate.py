"""Greedy generation in batches, longest inputs first (less padding), results in input order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def generate(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_new_tokens: int = 64,
    max_source_len: int | None = None,
) -> list[str]:
    """Greedy outputs of a seq2seq ``model`` (plain or peft-wrapped) for ``texts``, in input order.

    Runs in eval mode under ``torch.inference_mode`` on the model's device and puts the model back in
    the mode it was in. Inputs are batched by character length, a tokenizer-free proxy for token length
    that keeps similar lengths together; ``max_source_len`` truncates inputs (in tokens) when set."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size!r})")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    outputs: list[str] = [""] * len(texts)
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = tokenizer(
                    [texts[i] for i in idx],
                    return_tensors="pt",
                    padding=True,
                    truncation=max_source_len is not None,
                    max_length=max_source_len,
                ).to(device)
                generated = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
                decoded = tokenizer.batch_decode(generated, skip_special_tokens=True)
                for i, text in zip(idx, decoded, strict=True):
                    outputs[i] = text
    finally:
        model.train(was_training)
    return outputs
