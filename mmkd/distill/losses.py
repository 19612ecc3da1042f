"""MMKD loss terms (Li et al., EMNLP 2022, arXiv 2211.01200) for encoder-decoder models.

Small pure functions, one per level, plus the one module that owns parameters (``MMKDHeads``).
Shapes: B = batch, L = target length, S = source length, V = vocabulary, K = teacher top-k,
W = aligned words (fields) per example, H_s / H_t = student / teacher hidden size.

- token     — KL(teacher ‖ student) of temperature-softened decoder distributions, × T²
              (full logits, or the teacher's cached top-k)
- word      — aligned word vectors: InfoNCE over the batch's words (or MSE)
- sentence  — BYOL: the student's projected + predicted sentence vector against the teacher's
- structure — KL between the teacher's and the student's in-batch sentence-similarity distributions
- triplet   — Oki et al. (arXiv 2004.08116): the student's sentence closer to its own teacher
              sentence than to another example's, by a margin

Every function detaches the teacher side: gradients reach the student (and the heads) only. Every
function checks shapes first and quotes them, and returns a finite zero that still has a graph (so
``backward`` works unchanged) when nothing is left to compare: every label ignored, no valid word, a
batch too small for in-batch terms.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.config import DistillConfig

# Defaults from the schema (the recipe always passes the sweep's values; these serve direct callers).
_DEFAULTS = DistillConfig.model_fields
TEMPERATURE: float = _DEFAULTS["temperature"].default
WORD_TEMPERATURE: float = _DEFAULTS["word_temperature"].default
STRUCTURE_TEMPERATURE: float = _DEFAULTS["structure_temperature"].default


def _shapes(*named: tuple[str, torch.Tensor]) -> str:
    return ", ".join(f"{name} {tuple(t.shape)}" for name, t in named)


def _require(ok: bool, where: str, what: str, *named: tuple[str, torch.Tensor]) -> None:
    if not ok:
        raise ValueError(f"{where}: {what}; got {_shapes(*named)}")


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0 (got {value!r})")


def _zero(t: torch.Tensor) -> torch.Tensor:
    """A 0 connected to t's graph, so callers can ``backward`` without a special case.

    Summed in float32: a half-precision sum of a large logits tensor can overflow to inf, and inf · 0
    is NaN.
    """
    return t.float().sum() * 0.0


def _check_topk(
    student_logits: torch.Tensor,
    teacher_topk_values: torch.Tensor,
    teacher_topk_indices: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
) -> int:
    """Check ``token_kd_topk``'s inputs (a ``ValueError`` naming the bad one); the student's vocab size."""
    named = (
        ("student_logits", student_logits),
        ("teacher_topk_values", teacher_topk_values),
        ("teacher_topk_indices", teacher_topk_indices),
        ("labels", labels),
    )
    _require(
        student_logits.dim() == 3 and teacher_topk_values.dim() == 3 and labels.dim() == 2,
        "token_kd_topk",
        "expected logits [B, L, V], top-k values and indices [B, L, K], labels [B, L]",
        *named,
    )
    _require(
        teacher_topk_values.shape == teacher_topk_indices.shape
        and student_logits.shape[:2] == teacher_topk_values.shape[:2] == labels.shape,
        "token_kd_topk",
        "batch and length must match and top-k values and indices must have one shape",
        *named,
    )
    if teacher_topk_indices.is_floating_point() or teacher_topk_indices.dtype == torch.bool:
        raise ValueError(
            f"token_kd_topk: teacher_topk_indices must be integer ids (got {teacher_topk_indices.dtype})"
        )
    _check_positive("temperature", temperature)
    return int(student_logits.shape[-1])


def token_kd_topk(
    student_logits: torch.Tensor,
    teacher_topk_values: torch.Tensor,
    teacher_topk_indices: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = TEMPERATURE,
    ignore_index: int = -100,
    teacher_vocab_size: int | None = None,
) -> torch.Tensor:
    """Token level from a cached teacher that kept only its top-k logits per position.

    student_logits [B, L, V_s], teacher_topk_values [B, L, K], teacher_topk_indices [B, L, K] (integer
    token ids), labels [B, L] → scalar: the mean over the positions whose label is not ``ignore_index``,
    times T² so that the gradient's size does not shrink as T grows (Hinton et al., 2015).

    The teacher distribution p is renormalised over its top-k (softmax of values / T). The student's
    log-probabilities q are the *full-vocabulary* log_softmax(logits / T) gathered at those ids, not a
    softmax over the k ids alone: Σ_k p_k (log p_k − log q_k) is then still ≥ 0 and is 0 only when
    the student puts all its mass on the teacher's top-k, so the student is pushed down on the tail
    the teacher left out instead of being free to keep mass there. With K = V this is the full
    KL(softmax(t / T) ‖ softmax(s / T)).

    Only ids below min(V_s, ``teacher_vocab_size``) are compared (V_s when the teacher's size is not
    given): vocabularies padded to different multiples have the real tokens first, and the extra
    columns belong to no token. The teacher's top-k entries beyond the student's vocabulary are dropped
    and the rest renormalised; a position left with none counts as ignored.
    """
    vocab = _check_topk(student_logits, teacher_topk_values, teacher_topk_indices, labels, temperature)
    if teacher_vocab_size is not None:
        if teacher_vocab_size < 1:
            raise ValueError(f"teacher_vocab_size must be >= 1 (got {teacher_vocab_size!r})")
        vocab = min(vocab, teacher_vocab_size)
    mask = labels.ne(ignore_index)
    ids = teacher_topk_indices[mask].long()
    if ids.numel() and int(ids.min()) < 0:
        raise ValueError(
            f"token_kd_topk: teacher_topk_indices has negative ids (min {int(ids.min())}); ids above "
            f"{torch.iinfo(teacher_topk_indices.dtype).max} do not fit in {teacher_topk_indices.dtype}"
        )
    in_vocab = ids < vocab  # [N, K]
    keep = in_vocab.any(-1)
    if not keep.any():
        return _zero(student_logits)
    ids, in_vocab = ids[keep], in_vocab[keep]
    s = F.log_softmax(student_logits[..., :vocab][mask][keep].float() / temperature, dim=-1)
    # clamp only makes the gather legal for dropped entries; their teacher weight is exactly 0
    s_top = s.gather(-1, ids.clamp_max(vocab - 1))
    values = teacher_topk_values.detach()[mask][keep].float() / temperature
    log_p = F.log_softmax(values.masked_fill(~in_vocab, -math.inf), dim=-1)
    # dropped entries: p = 0 and log p = −inf; zero the log so 0 · (−inf) does not make a NaN
    kl = log_p.exp() * (log_p.masked_fill(~in_vocab, 0.0) - s_top)
    return kl.sum(-1).mean() * temperature**2


def masked_mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where mask is true: states [B, S, H], mask [B, S] → [B, H].

    A row with no true position pools to zeros rather than NaN.
    """
    named = (("states", states), ("mask", mask))
    _require(
        states.dim() == 3 and states.shape[:2] == mask.shape,
        "masked_mean_pool",
        "expected states [B, S, H] and mask [B, S]",
        *named,
    )
    m = mask.to(states.dtype).unsqueeze(-1)
    return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


def pool_spans(states: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Mean of each span's positions: states [B, S, H], spans [B, W, 2] (start, end exclusive) → [B, W, H].

    An empty span (start ≥ end, the padding of a batch's span list) pools to zeros; mask it out where
    it is used. Student and teacher spans are pooled separately (each on its own tokenisation): span w
    of one side is aligned to span w of the other by construction of the data.
    """
    named = (("states", states), ("spans", spans))
    _require(
        states.dim() == 3 and spans.dim() == 3 and spans.shape[0] == states.shape[0] and spans.shape[-1] == 2,
        "pool_spans",
        "expected states [B, S, H] and spans [B, W, 2]",
        *named,
    )
    if spans.is_floating_point():
        raise ValueError(f"pool_spans: spans must be integer positions (got {spans.dtype})")
    positions = torch.arange(states.shape[1], device=states.device)
    inside = (positions >= spans[..., :1]) & (positions < spans[..., 1:])  # [B, W, S]
    weights = inside.to(states.dtype)
    return torch.einsum("bws,bsh->bwh", weights, states) / weights.sum(-1, keepdim=True).clamp_min(1.0)


def word_align_loss(
    student_words: torch.Tensor,
    teacher_words: torch.Tensor,
    mask: torch.Tensor,
    projection: nn.Module | None = None,
    kind: Literal["contrastive", "mse"] = "contrastive",
    temperature: float = WORD_TEMPERATURE,
) -> torch.Tensor:
    """Word level: each student word vector against the teacher's vector of the aligned word.

    student_words [B, W, H_s], teacher_words [B, W, H_t] (each side's states pooled over its spans
    with ``pool_spans``), mask [B, W] bool (valid aligned words) → scalar. The inputs are pooled words,
    not states and spans, because the teacher-output cache stores the teacher's pooled words only.
    ``projection`` maps H_s → H_t (None: identity, the sizes must match).

    ``contrastive``: InfoNCE over all N valid words of the batch — for student word i the aligned
    teacher word i is the positive and the other N − 1 teacher words the negatives, on cosine
    similarity / ``temperature``; mean over the N words. ``mse``: mean squared error of the projected
    student words against the teacher's. No valid word → 0.
    """
    named = (("student_words", student_words), ("teacher_words", teacher_words), ("mask", mask))
    _require(
        student_words.dim() == 3
        and teacher_words.dim() == 3
        and student_words.shape[:2] == teacher_words.shape[:2] == mask.shape,
        "word_align_loss",
        "expected student_words [B, W, H_s], teacher_words [B, W, H_t], mask [B, W]",
        *named,
    )
    if mask.dtype != torch.bool:
        raise ValueError(f"word_align_loss: mask must be bool (got {mask.dtype})")
    if kind not in ("contrastive", "mse"):
        raise ValueError(f"kind must be 'contrastive' or 'mse' (got {kind!r})")
    _check_positive("temperature", temperature)
    s = student_words[mask]  # [N, H_s]
    if projection is not None:
        s = projection(s)
    t = teacher_words.detach()[mask].to(s.dtype)
    _require(
        s.shape[-1] == t.shape[-1],
        "word_align_loss",
        f"projected student words have size {s.shape[-1]}, teacher words {t.shape[-1]}",
        *named,
    )
    if s.shape[0] == 0:
        return _zero(s)  # s, not student_words: keeps the projection's parameters in the graph
    if kind == "mse":
        return F.mse_loss(s.float(), t.float())
    logits = F.normalize(s.float(), dim=-1) @ F.normalize(t.float(), dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(s), device=s.device))


def sentence_loss(
    student_pooled: torch.Tensor,
    teacher_pooled: torch.Tensor,
    projector: nn.Module,
    predictor: nn.Module | None = None,
) -> torch.Tensor:
    """Sentence level, BYOL style: 2 − 2·cos(predictor(projector(student)), teacher), batch mean.

    student_pooled [B, H_s], teacher_pooled [B, H_t] → scalar in [0, 4]. When the sizes differ the
    *student* is mapped into the teacher's space: ``projector`` maps H_s → H_t (then ``predictor``
    H_t → H_t, if given), and the teacher vector is the target as it is — a fixed target needs no
    projection of its own, and projecting it would let the two learned maps agree on a shrunken space.
    """
    named = (("student_pooled", student_pooled), ("teacher_pooled", teacher_pooled))
    _require(
        student_pooled.dim() == 2
        and teacher_pooled.dim() == 2
        and len(student_pooled) == len(teacher_pooled),
        "sentence_loss",
        "expected student_pooled [B, H_s] and teacher_pooled [B, H_t]",
        *named,
    )
    p = projector(student_pooled)
    if predictor is not None:
        p = predictor(p)
    _require(
        p.shape == teacher_pooled.shape,
        "sentence_loss",
        f"projector/predictor output {tuple(p.shape)} does not match the teacher",
        *named,
    )
    t = teacher_pooled.detach().float()
    return (2 - 2 * F.cosine_similarity(p.float(), t, dim=-1)).mean()


def _similarity_log_rows(pooled: torch.Tensor, temperature: float) -> torch.Tensor:
    """Row-wise log-softmax of cosine similarities / T with the diagonal removed: [B, H] → [B, B−1].

    The diagonal (an example with itself) is always 1: it carries nothing about the structure, and as
    the largest logit of every row it would only flatten the differences between the others.
    """
    n = F.normalize(pooled.float(), dim=-1)
    sim = n @ n.T / temperature
    off = ~torch.eye(len(pooled), dtype=torch.bool, device=pooled.device)
    return F.log_softmax(sim[off].view(len(pooled), -1), dim=-1)


def structure_loss(
    student_pooled: torch.Tensor, teacher_pooled: torch.Tensor, temperature: float = STRUCTURE_TEMPERATURE
) -> torch.Tensor:
    """Structure level: KL(teacher rows ‖ student rows) of the in-batch similarity distributions.

    student_pooled [B, H_s], teacher_pooled [B, H_t] → scalar. Row i of each side is the softmax over
    j ≠ i of cos(x_i, x_j) / T; the loss is the mean over rows of KL(teacher row ‖ student row).
    Cosine similarities are dimension-free, so the student needs no projection. 0 for B < 3: with one
    other example per row every row is the same certain distribution.
    """
    named = (("student_pooled", student_pooled), ("teacher_pooled", teacher_pooled))
    _require(
        student_pooled.dim() == 2
        and teacher_pooled.dim() == 2
        and len(student_pooled) == len(teacher_pooled),
        "structure_loss",
        "expected student_pooled [B, H_s] and teacher_pooled [B, H_t]",
        *named,
    )
    _check_positive("temperature", temperature)
    if len(student_pooled) < 3:
        return _zero(student_pooled)
    s = _similarity_log_rows(student_pooled, temperature)
    t = _similarity_log_rows(teacher_pooled.detach(), temperature)
    return F.kl_div(s, t, log_target=True, reduction="batchmean")


def triplet_kd(
    student_pooled: torch.Tensor, teacher_pooled: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Triplet KD: max(0, ‖s_i − t_i‖ − ‖s_i − t_{i−1}‖ + margin), batch mean.

    student_pooled [B, H], teacher_pooled [B, H] (already in a common space, e.g. the student through
    ``MMKDHeads.projector``) → scalar; 0 for B = 1. Anchor: the student's sentence; positive: the
    teacher's sentence of the same example; negative: the teacher's sentence of the previous example
    (a roll by one). The roll uses every teacher vector as a negative exactly once, and unlike hardest-
    negative mining it does not seek out the translations of the same sentence that multilingual
    batches contain — negatives that are really positives.
    """
    named = (("student_pooled", student_pooled), ("teacher_pooled", teacher_pooled))
    _require(
        student_pooled.dim() == 2 and student_pooled.shape == teacher_pooled.shape,
        "triplet_kd",
        "expected student_pooled and teacher_pooled of one shape [B, H]",
        *named,
    )
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0 (got {margin!r})")
    if len(student_pooled) < 2:
        return _zero(student_pooled)
    s = student_pooled.float()
    t = teacher_pooled.detach().float()
    return F.triplet_margin_loss(s, t, t.roll(1, dims=0), margin=margin)


class MMKDHeads(nn.Module):
    """The learned maps from the student's hidden size into the teacher's, trained with the student.

    - ``word``: H_s → H_t linear projection for the word level, learned at every pair of sizes — an
      identity at equal sizes would change what the word loss measures between ratios whose widths
      match (NLLB-200 600M and 1.3B are both 1024 wide) and those whose widths differ.
    - ``projector`` (H_s → proj_dim → H_t) and ``predictor`` (H_t → proj_dim → H_t): BYOL's two MLPs
      for the sentence level, always present — BYOL's predictor is what lets the student match a fixed
      target through a learned map even at equal sizes. The triplet term uses ``projector`` too.

    ``proj_dim`` is the MLPs' hidden width (default H_t). Their outputs are H_t because the teacher
    vector is the target unprojected. No BatchNorm as in BYOL: batches can be a single example, and a
    fixed teacher leaves no collapse to guard against.
    """

    def __init__(self, student_dim: int, teacher_dim: int, proj_dim: int | None = None) -> None:
        super().__init__()
        for name, value in (
            ("student_dim", student_dim),
            ("teacher_dim", teacher_dim),
            ("proj_dim", proj_dim),
        ):
            if value is not None and value < 1:
                raise ValueError(f"MMKDHeads: {name} must be >= 1 (got {value!r})")
        hidden = proj_dim if proj_dim is not None else teacher_dim
        self.word = nn.Linear(student_dim, teacher_dim)
        self.projector = nn.Sequential(
            nn.Linear(student_dim, hidden), nn.ReLU(), nn.Linear(hidden, teacher_dim)
        )
        self.predictor = nn.Sequential(
            nn.Linear(teacher_dim, hidden), nn.ReLU(), nn.Linear(hidden, teacher_dim)
        )
