"""The offline tiny family: byte-level T5 models pretrained here on the multilingual CLDR corpus.

``mmkd zoo build`` pretrains every size with T5 span corruption on the built-in task's corpus (every
language), so each model knows every language before any English-only finetuning. Models are saved with
``save_pretrained`` (safetensors) next to a ``ByT5Tokenizer`` and loaded with ``from_pretrained`` — the
same code path as hub models. A build is cached under ``<cache>/zoo/<size>-<hash>/``, the hash covering
the architecture, the pretraining settings and the corpus, so a changed corpus or setting rebuilds and an
unchanged one is reused by every later sweep. The cache is ``$MMKD_CACHE`` (default ``~/.cache/mmkd``);
on a multi-node cluster point it at shared storage.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mmkd.atomic import build_dir_once, model_dir_complete
from mmkd.config import ZooConfig
from mmkd.schedule import warmup_cosine

# Bump when the pretraining code changes in a way that changes the weights it produces.
ZOO_VERSION = 3

# d_model, d_ff, layers (encoder = decoder), heads; d_kv = d_model // heads. Tied embeddings (T5 v1.0)
# keep the byte vocabulary (384 ids) from dominating the smallest sizes.
TINY_SIZES: dict[str, tuple[int, int, int, int]] = {
    "xxs": (16, 32, 1, 2),  # the smallest student: teacher/student ratios up to ~250 without embeddings
    "xs": (32, 64, 1, 2),
    "s": (64, 128, 2, 4),
    "sm": (80, 160, 2, 4),  # a second student the size of s (xs cannot do the task): both meet m, l, xl
    "m": (96, 192, 3, 4),
    "l": (128, 256, 4, 4),
    "xl": (192, 384, 4, 6),  # a teacher above l: the s student meets three teachers (m, l, xl)
}


def cache_root() -> Path:
    return Path(os.environ.get("MMKD_CACHE", Path.home() / ".cache" / "mmkd"))


def tiny_config(size: str) -> Any:
    from transformers import ByT5Tokenizer, T5Config

    d_model, d_ff, layers, heads = TINY_SIZES[size]
    tok = ByT5Tokenizer()
    return T5Config(  # type: ignore[call-arg]  # T5Config takes the PretrainedConfig kwargs too
        vocab_size=len(tok),  # 384: bytes + specials + sentinels; tok.vocab_size (256) would be too small
        d_model=d_model,
        d_ff=d_ff,
        d_kv=d_model // heads,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=heads,
        dropout_rate=0.0,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )


def zoo_corpus(settings: ZooConfig) -> list[str]:
    """Every language of the built-in task, interleaved so each batch mixes languages."""
    from mmkd.data import get_task

    task = get_task("builtin/cldr", seed=settings.seed)
    per_lang = [task.corpus(lang)[: settings.corpus_lines] for lang in task.languages]
    return [line for group in zip(*per_lang, strict=False) for line in group]


def zoo_key(size: str, settings: ZooConfig, corpus: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([ZOO_VERSION, size, TINY_SIZES[size], settings.model_dump()]).encode())
    for line in corpus:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()[:12]


def zoo_path(size: str, settings: ZooConfig, corpus: Sequence[str], root: Path | None = None) -> Path:
    return (root or cache_root()) / "zoo" / f"{size}-{zoo_key(size, settings, corpus)}"


def span_corrupt(
    ids: Sequence[int], rng: random.Random, sentinels: Sequence[Any], noise_density: float, mean_span: float
) -> tuple[list[int], list[int]]:
    """T5 span corruption of one sequence: (input with sentinels, target of sentinel + masked spans).

    Like T5's ``random_spans_noise_mask``: the noise and non-noise tokens are each cut into the same
    number of random segments and interleaved, starting with a non-noise segment.
    """
    n = len(ids)
    n_noise = min(max(1, round(n * noise_density)), n - 1)
    n_spans = max(1, min(round(n_noise / mean_span), n_noise, n - n_noise, len(sentinels)))

    def segments(total: int) -> list[int]:
        cuts = sorted(rng.sample(range(1, total), n_spans - 1)) if n_spans > 1 else []
        bounds = [0, *cuts, total]
        return [b - a for a, b in itertools.pairwise(bounds)]

    noise_lens, keep_lens = segments(n_noise), segments(n - n_noise)
    inp: list[int] = []
    tgt: list[int] = []
    pos = 0
    for i, (keep, noise) in enumerate(zip(keep_lens, noise_lens, strict=True)):
        inp.extend(ids[pos : pos + keep])
        pos += keep
        inp.append(sentinels[i])
        tgt.append(sentinels[i])
        tgt.extend(ids[pos : pos + noise])
        pos += noise
    return inp, tgt


def _pad(seqs: list[list[int]], fill: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [fill] * (width - len(s)) for s in seqs])


def sentinel_ids(tokenizer: Any, n: int = 100) -> list[int]:
    """The ids that replace masked spans: T5's ``<extra_id_i>`` (ByT5, mT5, the tiny family), or, for a
    tokenizer without them (NLLB, mBART-50), its mask token for every span (BART-style infilling)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = [tokenizer.convert_tokens_to_ids(f"<extra_id_{i}>") for i in range(n)]
    if all(isinstance(i, int) and i != unk for i in ids):
        return ids
    if getattr(tokenizer, "mask_token_id", None) is not None:
        return [tokenizer.mask_token_id] * n
    raise ValueError("the tokenizer has neither <extra_id_*> sentinels nor a mask token")


def encode_corpus(tokenizer: Any, corpus: Sequence[str], max_len: int) -> list[list[int]]:
    """Token ids of each line (room left for the end token), lines too short to corrupt dropped."""
    encoded = [tokenizer(line, add_special_tokens=False)["input_ids"][: max_len - 1] for line in corpus]
    return [ids for ids in encoded if len(ids) >= 4]


Pairs = list[tuple[list[int], list[int]]]
# Draws n (input ids, target ids) pairs with the given rng: the translation part of a pretraining batch.
PairSampler = Callable[[random.Random, int], Pairs]


def span_corruption_batch(
    encoded: Sequence[Sequence[int]],
    rng: random.Random,
    sentinels: Sequence[int],
    batch_size: int,
    noise_density: float,
    mean_span: float,
    eos: int,
    pad: int,
    extra: Sequence[tuple[list[int], list[int]]] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids [B, S], labels [B, T]): ``batch_size`` lines drawn with ``rng`` and span-corrupted,
    then the ``extra`` pairs (e.g. translation); the inputs padded with ``pad``, the labels with -100
    (ignored by the loss). The attention mask is ``input_ids != pad``."""
    pairs = [
        span_corrupt(encoded[rng.randrange(len(encoded))], rng, sentinels, noise_density, mean_span)
        for _ in range(batch_size)
    ]
    pairs += list(extra)
    return _pad([p[0] + [eos] for p in pairs], pad), _pad([p[1] + [eos] for p in pairs], -100)


def translation_sampler(tokenizer: Any, seed: int, max_len: int) -> PairSampler:
    """Tagged translation pairs among every language of the built-in task, from its training records
    only (``<2sw> 3 days ago`` → ``siku 3 zilizopita``; mmkd.data.translation), as token ids."""
    from mmkd.data import get_task
    from mmkd.data.translation import TranslationPairs

    task = get_task("builtin/cldr", seed=seed)
    pairs = TranslationPairs(task, task.languages, family="tiny")

    def encode(text: str) -> list[int]:
        ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[: max_len - 1]

    def sample(rng: random.Random, n: int) -> Pairs:
        return [(encode(e.source), encode(e.target)) for e in pairs.sample(rng, n)]

    return sample


def pretrain(
    size: str,
    corpus: Sequence[str],
    settings: ZooConfig,
    out_dir: Path,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """Pretrain one tiny model (span corruption and tagged translation) and save it (model + tokenizer)
    to ``out_dir``."""
    from transformers import ByT5Tokenizer, T5ForConditionalGeneration

    torch.manual_seed(settings.seed)
    tok = ByT5Tokenizer()
    model = T5ForConditionalGeneration(tiny_config(size))
    start, loss_ema = time.perf_counter(), math.nan

    def on_step(step: int, loss: float) -> None:
        nonlocal loss_ema
        loss_ema = loss if math.isnan(loss_ema) else 0.95 * loss_ema + 0.05 * loss
        if progress is not None:
            progress(step, loss_ema)

    n_translation = round(settings.batch_size * settings.translation_share)
    train_span_corruption(
        model,
        tok,
        encode_corpus(tok, corpus, settings.max_len),
        random.Random(settings.seed),
        steps=settings.steps,
        lr=settings.lr,
        weight_decay=0.01,
        warmup_steps=settings.warmup_steps,
        batch_size=settings.batch_size - n_translation,
        noise_density=settings.noise_density,
        mean_span=settings.mean_span,
        on_step=on_step,
        translation=(translation_sampler(tok, settings.seed, settings.max_len), n_translation),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    stats = {
        "params": float(sum(p.numel() for p in model.parameters())),
        "final_loss": loss_ema,
        "seconds": time.perf_counter() - start,
        "seconds_per_step": (time.perf_counter() - start) / max(1, settings.steps),
    }
    record = {"size": size, "settings": settings.model_dump(), **stats}
    (out_dir / "mmkd_zoo.json").write_text(json.dumps(record))
    return stats


def train_span_corruption(
    model: Any,
    tokenizer: Any,
    encoded: Sequence[list[int]],
    rng: random.Random,
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    batch_size: int,
    noise_density: float,
    mean_span: float,
    on_step: Callable[[int, float], None],
    translation: tuple[PairSampler, int] | None = None,
) -> None:
    """AdamW on T5 span corruption over ``encoded`` lines (``batch_size`` of them a step, plus ``n``
    pairs of ``translation = (sampler, n)`` when given), every parameter of ``model`` (on its device),
    warmup + cosine schedule, gradients clipped at 1; ``on_step(step, loss)`` after each step (from 1).
    The zoo's pretraining and the trials' language-adaptive pretraining (``mmkd.models.lapt``)."""
    device = next(model.parameters()).device
    sentinels, eos, pad = sentinel_ids(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id
    params = list(model.parameters())
    model.train()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(warmup_steps, steps))
    for step in range(steps):
        extra = translation[0](rng, translation[1]) if translation and translation[1] else []
        inputs, labels = span_corruption_batch(
            encoded, rng, sentinels, batch_size, noise_density, mean_span, eos, pad, extra
        )
        inputs, labels = inputs.to(device), labels.to(device)
        loss = model(input_ids=inputs, attention_mask=inputs.ne(pad), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        on_step(step + 1, loss.item())


def ensure_built(
    size: str,
    settings: ZooConfig,
    corpus: Sequence[str] | None = None,
    root: Path | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Path:
    """The cached model directory for ``size``, pretraining it first if it is not there.

    Safe when several processes build the same size at once: each writes to a temporary directory and
    renames it into place; the loser of the race discards its copy.
    """
    corpus = zoo_corpus(settings) if corpus is None else corpus
    final = zoo_path(size, settings, corpus, root)
    return build_dir_once(
        final,
        lambda work: pretrain(size, corpus, settings, work, progress),
        model_dir_complete("mmkd_zoo.json"),
    )
