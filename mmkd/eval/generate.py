"""Greedy generation in batches of one language, longest inputs first (less padding), results in input
order; each batch tells the model its language the family's way (mmkd.models.langcodes): NLLB-200 and
mBART-50 get its token as the first generated token, the tiny family a tag before each input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mmkd.models.families import get_family
from mmkd.models.langcodes import input_language, input_tag, language_token_id


def generate(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_new_tokens: int = 64,
    max_source_len: int | None = None,
    langs: Sequence[str] | None = None,
    family: str | None = None,
    no_repeat_ngram: int = 0,
    synced_gpus: bool = False,
) -> list[str]:
    """Greedy outputs of a seq2seq ``model`` (plain or peft-wrapped) for ``texts``, in input order.

    Runs in eval mode under ``torch.inference_mode`` on the model's device and puts the model back in
    the mode it was in. Inputs are batched by character length, a tokenizer-free proxy for token length
    that keeps similar lengths together; ``max_source_len`` truncates inputs (in tokens) when set.

    ``langs`` is each text's language (input and expected output: the tasks answer in the language they
    are asked in); batches never mix languages. For a ``family`` that forces its output language
    (``mmkd.models.langcodes``) a batch in language L is tokenized with ``src_lang`` = L's token and
    generated with ``forced_bos_token_id`` = its id (NLLB ``swh_Latn``, mBART-50 ``sw_KE`` for sw); the
    tiny family's inputs get their language's tag (``<2sw> ``); for mT5 and ByT5 nothing is forced.
    ``no_repeat_ngram`` > 0 forbids repeating any sequence of that many tokens (degenerate loops).
    ``synced_gpus``: HF's option for a model sharded between processes (FSDP, ZeRO-3), which every rank
    runs on the same texts: each keeps stepping (and gathering parameters) until all have finished."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size!r})")
    if langs is not None and len(langs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(langs)} languages")
    if langs is None and family is not None and get_family(family).forced_bos_lang:
        raise ValueError(f"family {family!r} is told its output language: give every text's language")
    text_langs: Sequence[str | None] = [None] * len(texts) if langs is None else langs
    was_training = model.training
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: (text_langs[i] or "", -len(texts[i])))
    outputs: list[str] = [""] * len(texts)
    try:
        with torch.inference_mode():
            start = 0
            while start < len(order):
                lang = text_langs[order[start]]
                idx = [i for i in order[start : start + batch_size] if text_langs[i] == lang]
                start += len(idx)
                batch = [texts[i] for i in idx]
                decoded = _generate_batch(
                    model, tokenizer, batch, lang, family, max_new_tokens, max_source_len,
                    {"no_repeat_ngram_size": no_repeat_ngram} if no_repeat_ngram else {},
                    synced_gpus,
                )  # fmt: skip
                for i, text in zip(idx, decoded, strict=True):
                    outputs[i] = text
    finally:
        model.train(was_training)
    return outputs


def _generate_batch(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    lang: str | None,
    family: str | None,
    max_new_tokens: int,
    max_source_len: int | None,
    forced: dict[str, int],
    synced_gpus: bool,
) -> list[str]:
    if family is not None and lang is not None:
        token_id = language_token_id(family, lang, tokenizer)
        if token_id is not None:
            forced["forced_bos_token_id"] = token_id
        texts = [input_tag(family, lang) + text for text in texts]
    with input_language(tokenizer, family if lang is not None else None, lang or "en"):
        enc = tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=max_source_len is not None,
            max_length=max_source_len,
        ).to(next(model.parameters()).device)
    generated = model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        synced_gpus=synced_gpus or None,
        **forced,
    )
    decoded: list[str] = tokenizer.batch_decode(generated, skip_special_tokens=True)
    return decoded
