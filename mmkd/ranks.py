"""What the trial recipe does differently when it runs as one of several Ray Train workers.

The recipe (mmkd/trial.py) is the same on every worker; Ray Train starts the processes and their
process group, and Accelerate wraps the student in DDP (or mmkd.sharding shards it: ``strategy: fsdp``).
Three things depend on the worker's rank:

- each worker trains on its shard of every micro-batch (``rank_shard``): ``train.batch_size`` stays
  the global batch and the batch of step k stays a function of (seed, k), so N workers see the same
  examples per step as one;
- the reported losses are the means over the workers (``mean_over_ranks``), not rank 0's shard's;
- rank 0 alone evaluates, writes the per-example rows and checkpoints (``is_main``): DDP keeps every
  replica identical, and the other ranks wait for it in the next collective (their report). Under fsdp
  every forward needs every rank: they all generate, and gather the checkpoint, rank 0 alone writes.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs

T = TypeVar("T")


def rank_shard(idx: list[int], examples: list[T], accelerator: Accelerator) -> tuple[list[int], list[T]]:
    """This worker's contiguous share of a micro-batch: of its task rows (the first ``len(idx)``, which
    ``idx`` indexes) and of the translation pairs after them, each split as evenly as the sizes allow."""
    n, rank = accelerator.num_processes, accelerator.process_index
    if n == 1:
        return idx, examples
    task, pairs = examples[: len(idx)], examples[len(idx) :]
    return _share(idx, n, rank), _share(task, n, rank) + _share(pairs, n, rank)


def _share(rows: Any, n: int, rank: int) -> Any:
    bounds = [len(rows) * i // n for i in range(n + 1)]
    return rows[bounds[rank] : bounds[rank + 1]]


def mean_over_ranks(values: dict[str, float], accelerator: Accelerator) -> dict[str, float]:
    """Each value averaged over the workers (a no-op for one)."""
    if accelerator.num_processes == 1:
        return values
    stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=accelerator.device)
    mean = accelerator.reduce(stacked, reduction="mean")
    return dict(zip(values, mean.tolist(), strict=True))


def is_main(accelerator: Accelerator) -> bool:
    """Whether this worker evaluates, writes and checkpoints for the trial (rank 0, or the only one)."""
    return bool(accelerator.is_main_process)


def accelerator_options() -> dict[str, Any]:
    """Accelerate's settings for the recipe. ``cpu``: without a GPU, Accelerate joins the process group
    that Ray Train started (gloo) only when told it runs on CPUs; else each worker would train alone.
    DDP looks for parameters left without gradient (a distillation head whose level has weight 0, the
    encoder's second pass in parallel-input mode). ``split_batches``: the global batch is split between
    the workers (``rank_shard``), so the learning-rate schedule steps once per step, not once per worker.
    All are no-ops for a single process."""
    return {
        "cpu": not torch.cuda.is_available(),
        "dataloader_config": DataLoaderConfiguration(split_batches=True),
        "kwargs_handlers": [DistributedDataParallelKwargs(find_unused_parameters=True)],
    }


def unwrapped(model: Any) -> Any:
    """The model inside DDP's wrapper (for its submodules: ``get_encoder``), or the model itself."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
