"""MMKD loss terms (Li et al., EMNLP 2022) for encoder-decoder models: small pure functions.

Shapes: B = batch, L = target length, S = source length, V = vocabulary, K = teacher top-k,
W = aligned words (fields) per example, H_s / H_t = student / teacher hidden size.

- token     — KL between temperature-softened decoder distributions (full, or the teacher's top-k)
- word      — aligned word vectors: InfoNCE over the batch's words (or MSE)
- sentence  — BYOL: a projected + predicted student sentence vector against the teacher's
- structure — KL between the in-batch sentence-similarity distributions
- triplet   — Oki et al. (arXiv 2004.08116): the student's sentence closer to its own teacher
              sentence than to another example's, by a margin

Teacher tensors are always detached: gradients reach the student (and the heads) only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = ("token", "word", "sentence", "structure", "triplet")


@dataclass(frozen=True)
class LossWeights:
    task: float = 1.0
    token: float = 1.0
    word: float = 0.0
    sentence: float = 0.0
    structure: float = 0.0
    triplet: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"weight {f.name} must be >= 0 (got {getattr(self, f.name)!r})")

    def active(self) -> list[str]:
        return [name for name in LEVELS if getattr(self, name) > 0]


def _shapes(*named: tuple[str, torch.Tensor]) -> str:
    return ", ".join(f"{name} {tuple(t.shape)}" for name, t in named)


def token_kd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 2.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """KL(teacher ‖ student) of the softened decoder distributions, × T², mean over target positions.

    student_logits [B, L, V_s], teacher_logits [B, L, V_t], labels [B, L] → scalar. Positions whose label
    is ``ignore_index`` are skipped. When V_s ≠ V_t (vocabularies padded to different multiples), the
    first min(V_s, V_t) entries are compared.
    """
    if student_logits.shape[:2] != teacher_logits.shape[:2] or student_logits.shape[:2] != labels.shape:
        raise ValueError(
            "token_kd: shapes do not match: "
            + _shapes(("student", student_logits), ("teacher", teacher_logits), ("labels", labels))
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (got {temperature!r})")
    vocab = min(student_logits.shape[-1], teacher_logits.shape[-1])
    mask = labels.ne(ignore_index)
    if not mask.any():
        return student_logits.sum() * 0.0
    s = F.log_softmax(student_logits[..., :vocab][mask].float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits[..., :vocab][mask].detach().float() / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="none").sum(-1).mean() * temperature**2


def token_kd_topk(
    student_logits: torch.Tensor,
    teacher_values: torch.Tensor,
    teacher_indices: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 2.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Token level from a cached teacher: its top-k logits only.

    student_logits [B, L, V], teacher_values [B, L, K], teacher_indices [B, L, K] (int) → scalar.
    The teacher distribution is renormalised over its top-k (softmax of values / T); the student's
    log-probabilities are the full-vocabulary log_softmax(logits / T) gathered at those indices, so the
    student is still pushed down on everything outside the teacher's top-k. With K = V this is
    ``token_kd`` exactly.
    """
    if (
        teacher_values.shape != teacher_indices.shape
        or student_logits.shape[:2] != teacher_values.shape[:2]
        or labels.shape != student_logits.shape[:2]
    ):
        raise ValueError(
            "token_kd_topk: shapes do not match: "
            + _shapes(
                ("student", student_logits),
                ("values", teacher_values),
                ("indices", teacher_indices),
                ("labels", labels),
            )
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (got {temperature!r})")
    mask = labels.ne(ignore_index)
    if not mask.any():
        return student_logits.sum() * 0.0
    s = F.log_softmax(student_logits[mask].float() / temperature, dim=-1)
    s_top = s.gather(-1, teacher_indices[mask].long())
    t = F.log_softmax(teacher_values[mask].detach().float() / temperature, dim=-1)
    return (t.exp() * (t - s_top)).sum(-1).mean() * temperature**2


def masked_mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where mask is true: states [B, S, H], mask [B, S] → [B, H]."""
    if states.shape[:2] != mask.shape:
        raise ValueError("masked_mean_pool: " + _shapes(("states", states), ("mask", mask)))
    m = mask.to(states.dtype).unsqueeze(-1)
    return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


def pool_spans(states: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Mean of each span's positions: states [B, S, H], spans [B, W, 2] (start, end exclusive) → [B, W, H].

    An empty span (start == end) pools to zeros; mask it out where it is used.
    """
    if spans.dim() != 3 or spans.shape[0] != states.shape[0] or spans.shape[-1] != 2:
        raise ValueError("pool_spans: " + _shapes(("states", states), ("spans", spans)))
    positions = torch.arange(states.shape[1], device=states.device)
    inside = (positions >= spans[..., :1]) & (positions < spans[..., 1:])  # [B, W, S]
    weights = inside.to(states.dtype)
    return torch.einsum("bws,bsh->bwh", weights, states) / weights.sum(-1, keepdim=True).clamp_min(1.0)


def word_align_loss(
    student_words: torch.Tensor,
    teacher_words: torch.Tensor,
    mask: torch.Tensor,
    projection: nn.Module,
    kind: str = "contrastive",
    temperature: float = 0.1,
) -> torch.Tensor:
    """Word level: each student word vector against the teacher's vector of the aligned word.

    student_words [B, W, H_s], teacher_words [B, W, H_t], mask [B, W] (valid words) → scalar.
    ``contrastive``: InfoNCE over all valid words of the batch — the aligned teacher word is the
    positive, every other teacher word a negative (cosine similarity / temperature). ``mse``: mean
    squared error. The student side is projected to H_t first.
    """
    if student_words.shape[:2] != teacher_words.shape[:2] or mask.shape != student_words.shape[:2]:
        raise ValueError(
            "word_align_loss: "
            + _shapes(("student", student_words), ("teacher", teacher_words), ("mask", mask))
        )
    if kind not in ("contrastive", "mse"):
        raise ValueError(f"kind must be 'contrastive' or 'mse' (got {kind!r})")
    s = projection(student_words[mask])
    t = teacher_words[mask].detach().to(s.dtype)
    if s.shape[0] == 0:
        return student_words.sum() * 0.0
    if kind == "mse":
        return F.mse_loss(s, t)
    logits = F.normalize(s, dim=-1) @ F.normalize(t, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(s), device=s.device))


def sentence_loss(
    student_pooled: torch.Tensor, teacher_pooled: torch.Tensor, projector: nn.Module, predictor: nn.Module
) -> torch.Tensor:
    """Sentence level, BYOL style: 2 − 2·cos(predictor(projector(student)), teacher), batch mean.

    student_pooled [B, H_s], teacher_pooled [B, H_t] → scalar. The projector maps the student into the
    teacher's space (H_t), so the teacher side needs no projection and stays a fixed target.
    """
    if student_pooled.shape[0] != teacher_pooled.shape[0] or student_pooled.dim() != 2:
        raise ValueError(
            "sentence_loss: " + _shapes(("student", student_pooled), ("teacher", teacher_pooled))
        )
    p = predictor(projector(student_pooled))
    t = teacher_pooled.detach().to(p.dtype)
    return (2 - 2 * F.cosine_similarity(p, t, dim=-1)).mean()


def _similarity_rows(pooled: torch.Tensor, temperature: float) -> torch.Tensor:
    """Row-wise log-softmax of cosine similarities with the diagonal removed: [B, H] → [B, B−1].

    The diagonal (an example with itself) is always 1 and says nothing about the structure.
    """
    n = F.normalize(pooled.float(), dim=-1)
    sim = n @ n.T / temperature
    off = ~torch.eye(len(pooled), dtype=torch.bool, device=pooled.device)
    return F.log_softmax(sim[off].view(len(pooled), -1), dim=-1)


def structure_loss(
    student_pooled: torch.Tensor, teacher_pooled: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Structure level: KL(teacher rows ‖ student rows) of in-batch similarity distributions, row mean.

    student_pooled [B, H_s], teacher_pooled [B, H_t] → scalar (0 for B < 3: with one other example
    per row, every row is the same certain distribution). Similarities are dimension-free, so the
    student needs no projection.
    """
    if student_pooled.shape[0] != teacher_pooled.shape[0]:
        raise ValueError(
            "structure_loss: " + _shapes(("student", student_pooled), ("teacher", teacher_pooled))
        )
    if len(student_pooled) < 3:
        return student_pooled.sum() * 0.0
    s = _similarity_rows(student_pooled, temperature)
    t = _similarity_rows(teacher_pooled.detach(), temperature)
    return F.kl_div(s, t, log_target=True, reduction="batchmean")


def triplet_kd(student: torch.Tensor, teacher: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Triplet KD: anchor = student sentence, positive = its teacher sentence, negative = the teacher
    sentence of the next example in the batch (a roll by one: a fixed, cheap choice of negative).

    student [B, H], teacher [B, H] (already in a common space) → scalar; 0 for B < 2.
    """
    if student.shape != teacher.shape:
        raise ValueError("triplet_kd: " + _shapes(("student", student), ("teacher", teacher)))
    if len(student) < 2:
        return student.sum() * 0.0
    t = teacher.detach().to(student.dtype)
    return F.triplet_margin_loss(student, t, t.roll(1, dims=0), margin=margin)


class MMKDHeads(nn.Module):
    """The learned maps from the student's hidden size to the teacher's, trained with the student.

    ``word``: a linear projection (identity when sizes match); ``projector`` and ``predictor``: BYOL's
    two small MLPs for the sentence level (used for the triplet term too, through ``projector``).
    """

    def __init__(self, student_dim: int, teacher_dim: int) -> None:
        super().__init__()
        if student_dim < 1 or teacher_dim < 1:
            raise ValueError(f"dims must be >= 1 (got student {student_dim}, teacher {teacher_dim})")
        self.word: nn.Module = (
            nn.Identity() if student_dim == teacher_dim else nn.Linear(student_dim, teacher_dim)
        )
        self.projector = nn.Sequential(
            nn.Linear(student_dim, teacher_dim), nn.ReLU(), nn.Linear(teacher_dim, teacher_dim)
        )
        self.predictor = nn.Sequential(
            nn.Linear(teacher_dim, teacher_dim), nn.ReLU(), nn.Linear(teacher_dim, teacher_dim)
        )
