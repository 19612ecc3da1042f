"""What the teacher says about the training set, computed once per sweep and read by every trial.

Per (teacher, task split, tokenisation) the cache holds, in fp16: the teacher's top-k logits at every
target position (token level), its pooled encoder sentence vector (sentence, structure, triplet levels)
and its encoder states pooled over each aligned field (word level). Trials gather rows by example index
instead of running the teacher. The file is keyed by a content hash (teacher weights' record, task,
tokenisation, k), written to a temporary name and renamed, so trials starting at the same time never read
half a file, and a changed teacher gets a new cache. With a parallel corpus (``task.parallel_source``:
flores, tatoeba) its English sentences follow the training examples, rows ``len(train) + j``: the
teacher's side of the encoder-side levels in parallel-input mode.

A sweep computes the rows in ``distill.cache_shards`` shards, one Ray task (one GPU) each, then merges
them (mmkd.sweep.runner.prepare_artefacts). A shard is whole batches of the one-process build, so each row
is computed in the same batch with the same padding: the merged file holds the same tensors, and its key
does not depend on the shard count. Shards are built like every artefact (mmkd.atomic): a finished one
survives a kill and is reused, a cut one is rebuilt; they are deleted once merged.

``teacher_outputs`` is also what a trial calls when the cache is off: cached and recomputed teachers go
through the same function, so they give the same losses.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mmkd.atomic import Complete, build_file_once, safetensors_complete
from mmkd.config import SweepConfig
from mmkd.data import Example
from mmkd.data.collate import encode_batch, token_spans
from mmkd.distill.losses import masked_mean_pool, pool_spans

# Bump when what is cached for the same teacher and data changes (4: word spans after the language token).
CACHE_VERSION = 4
CACHE_TENSORS = {"topk_values", "topk_indices", "sentence", "words"}
BATCH_SIZE = 64

Progress = Callable[[int, int], None]  # (batches done, batches)
Loader = Callable[[], tuple[Any, Any]]  # () -> (teacher model, its tokenizer)


@dataclass(frozen=True)
class CacheSettings:
    """How a cache's rows are computed: the top-k kept, the tokenisation, the batches."""

    k: int
    max_source_len: int
    max_target_len: int
    batch_size: int = BATCH_SIZE


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


def compute_outputs(
    teacher: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    k: int,
    max_source_len: int,
    max_target_len: int,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """The cache's tensors for ``examples``, computed in batches of ``batch_size`` from the first;
    ``progress(batches_done, batches)`` after each batch."""
    device = next(teacher.parameters()).device
    teacher.eval()
    parts: list[dict[str, torch.Tensor]] = []
    batches = -(-len(examples) // batch_size)
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = encode_batch(tokenizer, chunk, max_source_len, max_target_len)
        spans = token_spans(tokenizer, chunk, max_source_len)
        out = teacher_outputs(teacher, {n: t.to(device) for n, t in batch.items()}, spans.to(device), k)
        parts.append({name: getattr(out, name).cpu() for name in CACHE_TENSORS})
        if progress is not None:
            progress(len(parts), batches)
    return _concat(parts)


def _concat(parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Rows of consecutive parts (batches, or shards) in one set of tensors, each padded with zeros to the
    longest part: target positions past a part's labels, and fields past the ones it aligns (a QA example
    aligns two, a corpus sentence one)."""
    length = max(p["topk_values"].shape[1] for p in parts)
    width = max(p["words"].shape[1] for p in parts)
    return {
        "topk_values": torch.cat([_pad(p["topk_values"], length) for p in parts]),
        "topk_indices": torch.cat([_pad(p["topk_indices"], length) for p in parts]),
        "sentence": torch.cat([p["sentence"] for p in parts]),
        "words": torch.cat([_pad(p["words"], width) for p in parts]),
    }


def _metadata(rows: int, k: int) -> dict[str, str]:
    return {"examples": str(rows), "k": str(k)}


def cache_complete(path: Path) -> bool:
    """A whole cache file: every tensor the trials read, each as long as the header says."""
    if not safetensors_complete(path):
        return False
    with safe_open(str(path), "pt") as f:
        return set(f.keys()) == CACHE_TENSORS


def _pad(t: torch.Tensor, length: int) -> torch.Tensor:
    """``t`` [rows, n, d] padded with zeros to [rows, length, d]."""
    return torch.nn.functional.pad(t, (0, 0, 0, length - t.shape[1]))


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


# ---------------------------------------------------------------------------------------------------
# Shards: the rows split between processes (one GPU each), then merged into the file above
# ---------------------------------------------------------------------------------------------------


def shard_ranges(rows: int, shards: int, batch_size: int = BATCH_SIZE) -> list[range]:
    """The rows of each of at most ``shards`` shards: whole batches of the one-process build, so every row
    is computed in the same batch as there (the same padding, so the same values); never an empty shard."""
    batches = -(-rows // batch_size)
    n = max(1, min(shards, batches))
    cuts = [min(rows, i * batches // n * batch_size) for i in range(n + 1)]
    return [range(a, b) for a, b in itertools.pairwise(cuts)]


def shard_dir(path: Path) -> Path:
    """Where the shards of the cache at ``path`` are built: a hidden folder beside it, deleted once merged."""
    return path.with_name(f".{path.name}.shards")


def shard_path(path: Path, index: int, shards: int) -> Path:
    return shard_dir(path) / f"{index + 1:03d}-of-{shards:03d}.safetensors"


def shard_complete(rows: range, k: int) -> Complete:
    """A whole shard file of ``rows``: the cache's tensors, and the rows and k its metadata records."""
    expected = _shard_metadata(rows, k)

    def complete(path: Path) -> bool:
        if not cache_complete(path):
            return False
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        return all(meta.get(key) == value for key, value in expected.items())

    return complete


def build_shard(
    load: Loader,
    examples: Sequence[Example],
    path: Path,
    index: int,
    shards: int,
    settings: CacheSettings,
    progress: Progress | None = None,
) -> Path:
    """Shard ``index`` of the cache at ``path`` (``examples`` split ``shards`` ways), unless it is there
    whole; ``load()`` gives the teacher and its tokenizer, and is called only when the shard is built."""
    ranges = shard_ranges(len(examples), shards, settings.batch_size)
    rows = ranges[index]

    def write(tmp: Path) -> None:
        teacher, tokenizer = load()
        chunk = examples[rows.start : rows.stop]
        tensors = compute_outputs(teacher, tokenizer, chunk, **asdict(settings), progress=progress)
        save_file(tensors, str(tmp), metadata=_shard_metadata(rows, settings.k))

    # Each shard is whole or absent like every artefact (mmkd.atomic): one a kill cut short is rebuilt,
    # a finished one is kept for the next build.
    return build_file_once(shard_path(path, index, len(ranges)), write, shard_complete(rows, settings.k))


def merge_shards(path: Path, rows: int, shards: int, settings: CacheSettings) -> Path:
    """The cache at ``path`` from its shards (all of them whole, else RuntimeError): the tensors
    ``compute_outputs`` computes for all rows in one go, value for value. The shards are deleted once it
    is in place."""
    ranges = shard_ranges(rows, shards, settings.batch_size)
    files = [shard_path(path, i, len(ranges)) for i in range(len(ranges))]

    def write(tmp: Path) -> None:
        missing = [f.name for f, r in zip(files, ranges, strict=True) if not shard_complete(r, settings.k)(f)]
        if missing:
            raise RuntimeError(f"{path.name}: shards {', '.join(missing)} are not built; nothing to merge")
        tensors = _concat([load_file(str(f)) for f in files])
        save_file(tensors, str(tmp), metadata=_metadata(rows, settings.k))

    build_file_once(path, write, cache_complete)
    shutil.rmtree(shard_dir(path), ignore_errors=True)
    return path


def build_sharded(
    load: Loader, examples: Sequence[Example], path: Path, shards: int, settings: CacheSettings
) -> Path:
    """Every shard in this process, one after the other (finished ones kept), then merged."""
    if cache_complete(path):
        return path
    load = functools.cache(load)  # the teacher is loaded once, and only if a shard is missing
    for index in range(len(shard_ranges(len(examples), shards, settings.batch_size))):
        build_shard(load, examples, path, index, shards, settings)
    return merge_shards(path, len(examples), shards, settings)


def _shard_metadata(rows: range, k: int) -> dict[str, str]:
    return {"start": str(rows.start), "stop": str(rows.stop), "k": str(k)}


# ---------------------------------------------------------------------------------------------------
# A sweep's caches: one per teacher, on the sweep's training rows
# ---------------------------------------------------------------------------------------------------


def sweep_cache_path(teacher_dir: Path, sweep: SweepConfig, root: Path) -> Path:
    """Keyed by the teacher, task and tokenisation, never by the shard count: the cache built in four
    shards is the cache built in one."""
    key = {
        "task": sweep.task.name,
        "options": sweep.task_options(),
        "source_len": sweep.train.max_source_len,
        "target_len": sweep.train.max_target_len,
    }
    return cache_path(root, teacher_dir, key, sweep.distill.top_k)


def cache_settings(sweep: SweepConfig) -> CacheSettings:
    return CacheSettings(
        k=sweep.distill.top_k,
        max_source_len=sweep.train.max_source_len,
        max_target_len=sweep.train.max_target_len,
    )


def cache_rows(sweep: SweepConfig) -> list[Example]:
    """The training examples, then (with a parallel corpus) its English sentences, tagged for the model."""
    from mmkd.data import get_task
    from mmkd.models.langcodes import tagged

    task = get_task(sweep.task.name, **sweep.task_options())
    examples = task.examples("train", task.source_lang)
    corpus = task.parallel_corpus() if sweep.distill.parallel else None
    return tagged(sweep.family.name, examples + list(corpus.english if corpus is not None else ()))


def teacher_loader(teacher_dir: Path) -> Loader:
    def load() -> tuple[Any, Any]:
        from mmkd.models import load_seq2seq

        model, tokenizer = load_seq2seq(teacher_dir)
        return model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu")), tokenizer

    return load


def ensure_shard(
    teacher_dir: Path, sweep: SweepConfig, root: Path, index: int, progress: Progress | None = None
) -> None:
    """Shard ``index`` of ``distill.cache_shards`` of the teacher's cache (one Ray task each), unless the
    merged cache or the shard is there already."""
    path = sweep_cache_path(teacher_dir, sweep, root)
    if cache_complete(path):
        return
    rows = cache_rows(sweep)
    shards = sweep.distill.cache_shards
    build_shard(teacher_loader(teacher_dir), rows, path, index, shards, cache_settings(sweep), progress)


def ensure_merged(teacher_dir: Path, sweep: SweepConfig, root: Path, rows: int) -> Path:
    """The teacher's cache, merged from the shards of ``rows`` rows that ``ensure_shard`` built."""
    path = sweep_cache_path(teacher_dir, sweep, root)
    return merge_shards(path, rows, sweep.distill.cache_shards, cache_settings(sweep))


def ensure_cache(teacher_dir: Path, sweep: SweepConfig, root: Path) -> Path:
    """The cache of ``teacher_dir`` on the sweep's training rows, built by this process if it is not
    there (the shards one after the other)."""
    path = sweep_cache_path(teacher_dir, sweep, root)
    if cache_complete(path):
        return path
    rows = cache_rows(sweep)
    settings = cache_settings(sweep)
    return build_sharded(teacher_loader(teacher_dir), rows, path, sweep.distill.cache_shards, settings)
