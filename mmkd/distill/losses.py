"""MMKD loss terms: small pure functions with their tensor shapes.

B = batch, L = target length, V = vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_kd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 2.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Token level: KL(teacher ‖ student) of the temperature-softened decoder distributions, × T².

    student_logits [B, L, V_s], teacher_logits [B, L, V_t], labels [B, L] → scalar, the mean over target
    positions whose label is not ``ignore_index``. When V_s ≠ V_t (vocabularies padded to different
    multiples), the first min(V_s, V_t) entries are compared. The teacher is detached.
    """
    if student_logits.shape[:2] != teacher_logits.shape[:2] or student_logits.shape[:2] != labels.shape:
        raise ValueError(
            f"shapes do not match: student {tuple(student_logits.shape)}, "
            f"teacher {tuple(teacher_logits.shape)}, "
            f"labels {tuple(labels.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (got {temperature!r})")
    vocab = min(student_logits.shape[-1], teacher_logits.shape[-1])
    mask = labels.ne(ignore_index)
    s = F.log_softmax(student_logits[..., :vocab][mask].float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits[..., :vocab][mask].detach().float() / temperature, dim=-1)
    if s.shape[0] == 0:
        return student_logits.sum() * 0.0
    kl = F.kl_div(s, t, log_target=True, reduction="none").sum(-1)
    return kl.mean() * temperature**2
