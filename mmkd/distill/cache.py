"""What the teacher says about the training set, computed once per sweep and read by every trial.

Per (teacher, task split, tokenisation) the cache holds, in fp16: the teacher's top-k logits at every
target position (token level), its pooled encoder sentence vector (sentence, structure, triplet levels)
and its encoder states pooled over each aligned field (word level). Trials gather rows by example index
instead of running the teacher. The file is keyed by a content hash (teacher weights' record, task,
tokenisation, k), written to a temporary name and renamed, so trials starting at the same time never read
half a file, and a changed teacher gets a new cache. With a parallel corpus (``task.parallel_source``:
flores, tatoeba) its English sentences follow the training examples, rows ``len(train) + j``: the
teacher's side of the encoder-side levels in parallel-input mode.

``teacher_outputs`` is also what a trial calls when the cache is off: cached and recomputed teachers go
through the same function, so they give the same losses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mmkd.atomic import build_file_once, safetensors_complete
from mmkd.config import SweepConfig
from mmkd.data import Example
from mmkd.data.collate import encode_batch, token_spans
from mmkd.distill.losses import masked_mean_pool, pool_spans

# Bump when what is cached for the same teacher and data changes (4: word spans after the language token).
CACHE_VERSION = 4
CACHE_TENSORS = {"topk_values", "topk_indices", "sentence", "words"}


@dataclass
class TeacherOutputs:
    topk_values: torch.Tensor  # [B, L, K]
    topk_indices: torch.Tensor  # [B, L, K]
    sentence: torch.Tensor  # [B, H_t]
    words: torch.Tensor  # [B, W, H_t]

    def to(self, device: torch.device) -> TeacherOutputs:
        return TeacherOutputs(
            *(t.to(device) for t in (self.topk_values, self.topk_indices, self.sentence, self.words))
        )


@torch.no_grad()
def teacher_outputs(
    teacher: Any, batch: dict[str, torch.Tensor], spans: torch.Tensor, k: int
) -> TeacherOutputs:
    """Run the teacher on a batch (teacher forcing on the labels) and keep what the losses need."""
    out = teacher(**batch)
    k = min(k, out.logits.shape[-1])
    values, indices = out.logits.float().topk(k, dim=-1)
    states = out.encoder_last_hidden_state.float()
    return TeacherOutputs(
        values.half(),
        indices.to(torch.int32),  # int16 would wrap the ids of 250k-token vocabularies
        masked_mean_pool(states, batch["attention_mask"]).half(),
        pool_spans(states, spans).half(),
    )


def cache_path(root: Path, teacher_dir: Path, task_key: dict[str, Any], k: int) -> Path:
    record = teacher_dir / "mmkd_teacher.json"
    fingerprint = record.read_text() if record.is_file() else str(teacher_dir)
    key = json.dumps([CACHE_VERSION, fingerprint, task_key, k], sort_keys=True)
    return root / f"teacher-cache-{hashlib.sha256(key.encode()).hexdigest()[:12]}.safetensors"


def build_cache(
    teacher: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    path: Path,
    *,
    k: int,
    max_source_len: int,
    max_target_len: int,
    batch_size: int = 64,
) -> Path:
    def write(tmp: Path) -> None:
        device = next(teacher.parameters()).device
        teacher.eval()
        parts: list[TeacherOutputs] = []
        target_len = 0
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            batch = encode_batch(tokenizer, chunk, max_source_len, max_target_len)
            spans = token_spans(tokenizer, chunk, max_source_len)
            parts.append(
                teacher_outputs(teacher, {n: t.to(device) for n, t in batch.items()}, spans.to(device), k)
            )
            target_len = max(target_len, batch["labels"].shape[1])
        width = max(p.words.shape[1] for p in parts)
        tensors = {
            "topk_values": torch.cat([_pad(p.topk_values.cpu(), target_len) for p in parts]),
            "topk_indices": torch.cat([_pad(p.topk_indices.cpu(), target_len) for p in parts]),
            "sentence": torch.cat([p.sentence.cpu() for p in parts]),
            # Chunks may align different numbers of fields (a QA example two, a corpus sentence one).
            "words": torch.cat([_pad_fields(p.words.cpu(), width) for p in parts]),
        }
        save_file(tensors, str(tmp), metadata={"examples": str(len(examples)), "k": str(k)})

    # Written to a temporary name and renamed: a concurrent reader sees no file or a whole one, and a
    # file cut short (a kill mid-copy, a full disk) is found by its length and rebuilt.
    return build_file_once(path, write, cache_complete)


def cache_complete(path: Path) -> bool:
    """A whole cache file: every tensor the trials read, each as long as the header says."""
    if not safetensors_complete(path):
        return False
    with safe_open(str(path), "pt") as f:
        return set(f.keys()) == CACHE_TENSORS


def _pad(t: torch.Tensor, length: int) -> torch.Tensor:
    return torch.nn.functional.pad(t, (0, 0, 0, length - t.shape[1]))


def _pad_fields(words: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(words, (0, 0, 0, width - words.shape[1]))


class CachedTeacher:
    """The teacher as a trial sees it when its outputs are cached: rows gathered by example index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._t = load_file(str(path))
        self.hidden_size = int(self._t["sentence"].shape[-1])

    def outputs(
        self, indices: Sequence[int], batch: dict[str, torch.Tensor], spans: torch.Tensor
    ) -> TeacherOutputs:
        idx = torch.tensor(list(indices))
        length = batch["labels"].shape[1]  # positions past an example's end are -100 in its labels
        rows = TeacherOutputs(
            self._t["topk_values"][idx, :length],
            self._t["topk_indices"][idx, :length],
            self._t["sentence"][idx],
            self._t["words"][idx, : spans.shape[1]],  # the fields these rows align (padding past them)
        )
        return rows.to(batch["labels"].device)


class LiveTeacher:
    """The teacher model run on every batch (``distill.cache: false``), through the same function that
    fills the cache."""

    def __init__(self, model: Any, k: int) -> None:
        self.model, self.k = model.eval().requires_grad_(False), k
        self.hidden_size = int(model.config.d_model)

    def outputs(
        self, indices: Sequence[int], batch: dict[str, torch.Tensor], spans: torch.Tensor
    ) -> TeacherOutputs:
        return teacher_outputs(self.model, batch, spans, self.k)


def ensure_cache(teacher_dir: Path, sweep: SweepConfig, root: Path) -> Path:
    """The cache of ``teacher_dir`` on the sweep's training split, built first if it is not there."""
    from mmkd.data import get_task
    from mmkd.models import load_seq2seq
    from mmkd.models.langcodes import tagged

    task = get_task(sweep.task.name, **sweep.task_options())
    key = {
        "task": sweep.task.name,
        "options": sweep.task_options(),
        "source_len": sweep.train.max_source_len,
        "target_len": sweep.train.max_target_len,
    }
    path = cache_path(root, teacher_dir, key, sweep.distill.top_k)
    if cache_complete(path):
        return path
    model, tokenizer = load_seq2seq(teacher_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    examples = task.examples("train", task.source_lang)
    corpus = task.parallel_corpus() if sweep.distill.parallel else None
    return build_cache(
        model.to(device),
        tokenizer,
        tagged(sweep.family.name, examples + list(corpus.english if corpus is not None else ())),
        path,
        k=sweep.distill.top_k,
        max_source_len=sweep.train.max_source_len,
        max_target_len=sweep.train.max_target_len,
    )
