"""The learning-rate schedule of every training loop (trials, teachers, the tiny zoo): linear warmup to
the peak, then a half cosine down to 0.1× the peak at the last step.

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, max_steps))

The factor is transformers' own (``get_cosine_with_min_lr_schedule_with_warmup``, ``min_lr_rate=0.1``):
the callers build their ``LambdaLR`` from a factor, so this returns the factor of that scheduler. Its
warmup starts at 0 (step 0 has no learning rate).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import get_cosine_with_min_lr_schedule_with_warmup

MIN_LR_RATE = 0.1


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """The learning-rate factor at each step (0-based) of a ``total``-step run with ``warmup`` steps."""
    # A throwaway optimiser: transformers builds the factor only together with a scheduler.
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup, num_training_steps=total, min_lr_rate=MIN_LR_RATE
    )
    factor: Callable[[int], float] = scheduler.lr_lambdas[0]
    return factor
