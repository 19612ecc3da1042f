"""Each MMKD loss against a naive loop-based reference; gradients reach the student and heads only;
each level goes down when a student is optimised toward a fixed teacher; bad shapes are refused."""

import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from mmkd.config import DISTILL_LEVELS, DistillConfig
from mmkd.distill.losses import (
    MMKDHeads,
    masked_mean_pool,
    pool_spans,
    sentence_loss,
    structure_loss,
    token_kd_topk,
    triplet_kd,
    word_align_loss,
)

B, L, V, S, H_S, H_T, W = 3, 5, 11, 7, 6, 8, 2


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _labels(batch=B):
    labels = torch.randint(0, V, (batch, L))
    labels[0, 3:] = -100
    return labels


def _cos(a, b):
    return float(a @ b) / (a.norm().item() * b.norm().item())


# ---- naive references: python loops over batch and positions -----------------------------------


def naive_token_kd(s_logits, t_logits, labels, T):
    vocab = min(s_logits.shape[-1], t_logits.shape[-1])
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for i in range(labels.shape[1]):
            if labels[b, i] == -100:
                continue
            p = torch.softmax(t_logits[b, i, :vocab] / T, -1).tolist()
            q = torch.softmax(s_logits[b, i, :vocab] / T, -1).tolist()
            total += sum(p[v] * (math.log(p[v]) - math.log(q[v])) for v in range(vocab))
            count += 1
    return total / count * T * T


def naive_token_kd_topk(s_logits, values, indices, labels, T):
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for i in range(labels.shape[1]):
            if labels[b, i] == -100:
                continue
            p = torch.softmax(values[b, i] / T, -1).tolist()
            log_q = torch.log_softmax(s_logits[b, i] / T, -1).tolist()
            ids = indices[b, i].tolist()
            total += sum(p[k] * (math.log(p[k]) - log_q[ids[k]]) for k in range(len(ids)))
            count += 1
    return total / count * T * T


def naive_similarity_rows(x, T):
    rows = []
    for i in range(len(x)):
        sims = [_cos(x[i], x[j]) / T for j in range(len(x)) if j != i]
        z = sum(math.exp(v) for v in sims)
        rows.append([math.exp(v) / z for v in sims])
    return rows


# ---- token level ---------------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_token_kd_topk_with_every_id_is_the_full_kl(T):
    s, t, labels = torch.randn(B, L, V), torch.randn(B, L, V), _labels()
    got = token_kd_topk(s, *t.topk(V, dim=-1), labels, T)
    assert got.item() == pytest.approx(naive_token_kd(s, t, labels, T), rel=1e-5)


def test_token_kd_topk_is_scaled_by_t_squared():
    s, t, labels = torch.randn(B, L, V), torch.randn(B, L, V), _labels()
    at_t4 = token_kd_topk(s, *t.topk(4, dim=-1), labels, temperature=4.0)
    assert at_t4.item() == pytest.approx(
        16 * token_kd_topk(s / 4, *(t / 4).topk(4, dim=-1), labels, temperature=1.0).item(), rel=1e-5
    )


def test_token_kd_topk_matches_the_naive_reference():
    s, t, labels = torch.randn(B, L, V), torch.randn(B, L, V), _labels()
    values, indices = t.topk(4, dim=-1)
    got = token_kd_topk(s, values, indices, labels, 2.0)
    assert got.item() == pytest.approx(naive_token_kd_topk(s, values, indices, labels, 2.0), rel=1e-5)
    assert got.item() > 0


def test_token_kd_topk_drops_teacher_ids_outside_the_compared_vocabulary():
    labels = _labels()
    # teacher vocabulary larger than the student's: its ids >= V are dropped, the first V compared
    s, t = torch.randn(B, L, V), torch.randn(B, L, V + 2)
    values, indices = t.topk(V + 2, dim=-1)
    assert token_kd_topk(s, values, indices, labels).item() == pytest.approx(
        naive_token_kd(s, t, labels, 2.0), rel=1e-5
    )
    # teacher vocabulary smaller: told its size, the student's extra columns leave the normaliser
    s, t = torch.randn(B, L, V + 2), torch.randn(B, L, V)
    values, indices = t.topk(V, dim=-1)
    assert token_kd_topk(s, values, indices, labels, teacher_vocab_size=V).item() == pytest.approx(
        naive_token_kd(s, t, labels, 2.0), rel=1e-5
    )


def test_token_kd_topk_treats_a_position_with_no_in_vocabulary_id_as_ignored():
    s, labels = torch.randn(B, L, V), _labels()
    values, indices = torch.randn(B, L, 2), torch.randint(0, V, (B, L, 2))
    outside = indices.clone()
    outside[1, 0] = V + 5  # the teacher's padded vocabulary only
    only_valid = labels.clone()
    only_valid[1, 0] = -100
    assert token_kd_topk(s, values, outside, labels).item() == pytest.approx(
        token_kd_topk(s, values, indices, only_valid).item(), rel=1e-6
    )


def test_token_kd_topk_refuses_negative_ids_with_the_overflow_hint():
    values, indices = torch.randn(B, L, 2), torch.randint(0, V, (B, L, 2)).to(torch.int16)
    indices[0, 0, 0] = -30000  # what id 35536 becomes in int16
    with pytest.raises(ValueError, match=r"negative ids \(min -30000\).*32767.*torch.int16"):
        token_kd_topk(torch.randn(B, L, V), values, indices, torch.zeros(B, L, dtype=torch.long))
    with pytest.raises(ValueError, match="integer ids"):
        token_kd_topk(torch.randn(B, L, V), values, indices.float(), _labels())


def test_the_token_loss_is_zero_with_grad_when_every_label_is_ignored():
    s = torch.randn(B, L, V, requires_grad=True)
    t, ignored = torch.randn(B, L, V), torch.full((B, L), -100)
    loss = token_kd_topk(s, *t.topk(3, dim=-1), ignored)
    loss.backward()
    assert loss.item() == 0.0 and s.grad is not None and not s.grad.any()


# ---- pooling and word level ----------------------------------------------------------------------


def test_pooling_matches_loops_and_empty_rows_pool_to_zero():
    states, mask = torch.randn(B, S, H_S), torch.rand(B, S) > 0.3
    mask[:, 0] = True
    mask[2] = False
    pooled = masked_mean_pool(states, mask)
    for b in range(B):
        expected = states[b][mask[b]].mean(0) if mask[b].any() else torch.zeros(H_S)
        assert torch.allclose(pooled[b], expected, atol=1e-6)
    spans = torch.tensor([[[0, 2], [3, 7]], [[1, 4], [4, 5]], [[0, 7], [2, 2]]])
    words = pool_spans(states, spans)
    for b in range(B):
        for w in range(W):
            a, e = spans[b, w].tolist()
            expected = states[b, a:e].mean(0) if e > a else torch.zeros(H_S)
            assert torch.allclose(words[b, w], expected, atol=1e-6)


def test_word_contrastive_and_mse_match_naive_references():
    sw, tw = torch.randn(B, W, H_S), torch.randn(B, W, H_T)
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    proj = nn.Linear(H_S, H_T)
    with torch.no_grad():
        s = [proj(sw[b, w]) for b in range(B) for w in range(W) if mask[b, w]]
    t = [tw[b, w] for b in range(B) for w in range(W) if mask[b, w]]
    expected = 0.0
    for i in range(len(s)):
        sims = [_cos(s[i], t[j]) / 0.1 for j in range(len(t))]
        expected += -(sims[i] - math.log(sum(math.exp(v) for v in sims)))
    expected /= len(s)
    assert word_align_loss(sw, tw, mask, proj, "contrastive", 0.1).item() == pytest.approx(expected, rel=1e-5)
    mse = sum(float(((a - b) ** 2).mean()) for a, b in zip(s, t, strict=True)) / len(s)
    assert word_align_loss(sw, tw, mask, proj, "mse").item() == pytest.approx(mse, rel=1e-5)
    with pytest.raises(ValueError, match="'cosine'"):
        word_align_loss(sw, tw, mask, proj, "cosine")  # type: ignore[arg-type]


def test_word_loss_without_valid_words_is_zero_with_grad_on_the_projection():
    proj = nn.Linear(H_S, H_T)
    loss = word_align_loss(
        torch.randn(B, W, H_S), torch.randn(B, W, H_T), torch.zeros(B, W, dtype=torch.bool), proj
    )
    loss.backward()
    assert loss.item() == 0.0 and proj.weight.grad is not None
    one = torch.zeros(B, W, dtype=torch.bool)
    one[1, 0] = True  # a single word is its own only candidate: nothing to contrast
    assert word_align_loss(torch.randn(B, W, H_T), torch.randn(B, W, H_T), one).item() == pytest.approx(0.0)


# ---- sentence, structure, triplet ---------------------------------------------------------------


@pytest.mark.parametrize("with_predictor", [True, False])
def test_sentence_loss_matches_the_byol_formula(with_predictor):
    sp, tp = torch.randn(B, H_S), torch.randn(B, H_T)
    heads = MMKDHeads(H_S, H_T)
    predictor = heads.predictor if with_predictor else None
    expected = 0.0
    with torch.no_grad():
        for b in range(B):
            p = heads.projector(sp[b])
            if predictor is not None:
                p = predictor(p)
            expected += 2 - 2 * _cos(p, tp[b])
    got = sentence_loss(sp, tp, heads.projector, predictor)
    assert got.item() == pytest.approx(expected / B, rel=1e-5)
    assert torch.isfinite(sentence_loss(sp[:1], tp[:1], heads.projector, predictor))


@pytest.mark.parametrize("T", [1.0, 0.5])
def test_structure_loss_matches_the_naive_reference(T):
    sp, tp = torch.randn(4, H_S), torch.randn(4, H_T)
    expected = 0.0
    for p, q in zip(naive_similarity_rows(tp, T), naive_similarity_rows(sp, T), strict=True):
        expected += sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True))
    assert structure_loss(sp, tp, T).item() == pytest.approx(expected / 4, rel=1e-5)


def test_structure_loss_is_zero_for_the_same_similarity_structure_in_another_space():
    teacher = torch.randn(5, H_T)
    # orthonormal columns [H_T, 12]: every cosine survives the change of size, and so does scaling
    embed = torch.linalg.qr(torch.randn(12, H_T))[0].T
    student = 3.0 * teacher @ embed
    assert structure_loss(student, teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert structure_loss(torch.randn(5, 12), teacher).item() > 1e-3


@pytest.mark.parametrize("batch", [1, 2])
def test_structure_loss_is_zero_with_grad_for_tiny_batches(batch):
    sp = torch.randn(batch, H_S, requires_grad=True)
    loss = structure_loss(sp, torch.randn(batch, H_T))
    loss.backward()
    assert loss.item() == 0.0 and sp.grad is not None


def test_triplet_matches_the_naive_reference_and_is_zero_for_one_example():
    s, t = torch.randn(B, H_T), torch.randn(B, H_T)
    expected = sum(max(0.0, (s[b] - t[b]).norm() - (s[b] - t[b - 1]).norm() + 1.0) for b in range(B)) / B
    assert triplet_kd(s, t).item() == pytest.approx(float(expected), rel=1e-4)
    one = torch.randn(1, H_T, requires_grad=True)
    loss = triplet_kd(one, torch.randn(1, H_T))
    loss.backward()
    assert loss.item() == 0.0 and one.grad is not None


# ---- gradients, optimisation --------------------------------------------------------------------


def test_gradients_reach_the_student_and_heads_but_never_the_teacher():
    heads = MMKDHeads(H_S, H_T)
    s_states = torch.randn(B, S, H_S, requires_grad=True)
    t_states = torch.randn(B, S, H_T, requires_grad=True)
    s_logits = torch.randn(B, L, V, requires_grad=True)
    t_logits = torch.randn(B, L, V, requires_grad=True)
    t_values, t_indices = (x.detach() for x in t_logits.topk(4, dim=-1))
    t_values.requires_grad_(True)
    mask, spans = torch.ones(B, S, dtype=torch.bool), torch.tensor([[[0, 3], [4, 7]]] * B)
    sp, tp = masked_mean_pool(s_states, mask), masked_mean_pool(t_states, mask)
    terms = {
        "token_topk": token_kd_topk(s_logits, t_values, t_indices, _labels()),
        "word": word_align_loss(
            pool_spans(s_states, spans),
            pool_spans(t_states, spans),
            torch.ones(B, W, dtype=torch.bool),
            heads.word,
        ),
        "sentence": sentence_loss(sp, tp, heads.projector, heads.predictor),
        "structure": structure_loss(sp, tp),
        "triplet": triplet_kd(heads.projector(sp), tp),
    }
    for name, loss in terms.items():
        assert loss.requires_grad, name
        # autograd.grad raises if the loss does not depend on a tensor: the teacher side is detached
        for teacher in (t_states, t_logits, t_values):
            assert torch.autograd.grad(loss, teacher, retain_graph=True, allow_unused=True) == (None,), name
    sum(terms.values()).backward()
    assert s_states.grad is not None and s_states.grad.abs().sum() > 0
    assert s_logits.grad is not None and s_logits.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads.parameters())
    assert t_states.grad is None and t_logits.grad is None and t_values.grad is None


@pytest.mark.parametrize("level", DISTILL_LEVELS)
def test_each_level_decreases_when_the_student_is_optimised(level):
    torch.manual_seed(1)
    heads = MMKDHeads(H_S, H_T)
    student = torch.randn(6, S, H_S, requires_grad=True)
    teacher = torch.randn(6, S, H_T)
    logits, t_logits, labels = torch.randn(6, L, V, requires_grad=True), torch.randn(6, L, V), _labels(6)
    mask, spans = torch.ones(6, S, dtype=torch.bool), torch.tensor([[[0, 3], [3, 7]]] * 6)
    opt = torch.optim.Adam([student, logits, *heads.parameters()], lr=0.05)

    def loss():
        sp, tp = masked_mean_pool(student, mask), masked_mean_pool(teacher, mask)
        if level == "token":
            return token_kd_topk(logits, *t_logits.topk(4, dim=-1), labels)
        if level == "word":
            words = pool_spans(student, spans), pool_spans(teacher, spans)
            return word_align_loss(*words, torch.ones(6, W, dtype=torch.bool), heads.word)
        if level == "sentence":
            return sentence_loss(sp, tp, heads.projector, heads.predictor)
        if level == "structure":
            return structure_loss(sp, tp)
        return triplet_kd(heads.projector(sp), tp)

    first = loss().item()
    for _ in range(50):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.5 * first


# ---- argument checking and heads ----------------------------------------------------------------

_BAD_CALLS = {
    "token_kd_topk 2-d": (
        lambda: token_kd_topk(torch.randn(B, V), torch.randn(B, 4), torch.zeros(B, 4).long(), _labels()),
        r"student_logits \(3, 11\)",
    ),
    "token_kd_topk": (
        lambda: token_kd_topk(
            torch.randn(B, L, V), torch.randn(B, L, 4), torch.zeros(B, L, 3).long(), _labels()
        ),
        r"teacher_topk_indices \(3, 5, 3\)",
    ),
    "masked_mean_pool": (
        lambda: masked_mean_pool(torch.randn(B, S, H_S), torch.ones(B, S + 1)),
        r"mask \(3, 8\)",
    ),
    "pool_spans": (
        lambda: pool_spans(torch.randn(B, S, H_S), torch.zeros(B, W, 3).long()),
        r"spans \(3, 2, 3\)",
    ),
    "word_align_loss": (
        lambda: word_align_loss(torch.randn(B, W, H_S), torch.randn(B, W + 1, H_T), torch.ones(B, W).bool()),
        r"teacher_words \(3, 3, 8\)",
    ),
    "word_align_loss sizes": (
        lambda: word_align_loss(torch.randn(B, W, H_S), torch.randn(B, W, H_T), torch.ones(B, W).bool()),
        "projected student words have size 6, teacher words 8",
    ),
    "sentence_loss": (
        lambda: sentence_loss(torch.randn(B, H_S), torch.randn(B + 1, H_T), nn.Linear(H_S, H_T)),
        r"teacher_pooled \(4, 8\)",
    ),
    "sentence_loss sizes": (
        lambda: sentence_loss(torch.randn(B, H_S), torch.randn(B, H_T), nn.Linear(H_S, H_S)),
        r"output \(3, 6\)",
    ),
    "structure_loss": (lambda: structure_loss(torch.randn(B, H_S), torch.randn(B, 2, H_T)), r"\(3, 2, 8\)"),
    "triplet_kd": (lambda: triplet_kd(torch.randn(B, H_S), torch.randn(B, H_T)), r"student_pooled \(3, 6\)"),
    "temperature": (
        lambda: token_kd_topk(torch.randn(B, L, V), *torch.randn(B, L, V).topk(4, dim=-1), _labels(), 0),
        r"> 0 \(got 0\)",
    ),
    "word temperature": (
        lambda: word_align_loss(
            torch.randn(B, W, H_T), torch.randn(B, W, H_T), torch.ones(B, W).bool(), None, "mse", -1.0
        ),
        r"got -1.0",
    ),
    "margin": (lambda: triplet_kd(torch.randn(B, H_T), torch.randn(B, H_T), margin=float("nan")), "got nan"),
}


@pytest.mark.parametrize("case", sorted(_BAD_CALLS))
def test_bad_shapes_and_arguments_raise_quoting_them(case):
    call, message = _BAD_CALLS[case]
    with pytest.raises(ValueError, match=message):
        call()


def test_the_word_head_is_a_learned_projection_for_every_pair_of_sizes():
    # Equal widths (NLLB-200 600M -> 1.3B) get the same kind of head as different ones: one word loss.
    for student_dim in (H_S, H_T):
        heads = MMKDHeads(student_dim, H_T)
        assert isinstance(heads.word, nn.Linear) and heads.word.weight.shape == (H_T, student_dim)
        mask = torch.ones(B, W, dtype=torch.bool)
        word_align_loss(torch.randn(B, W, student_dim), torch.randn(B, W, H_T), mask, heads.word).backward()
        assert heads.word.weight.grad is not None and heads.word.weight.grad.abs().sum() > 0
    same, other = MMKDHeads(H_T, H_T), MMKDHeads(H_S, H_T)
    assert [n for n, _ in same.named_parameters()] == [n for n, _ in other.named_parameters()]


def test_heads_shapes_and_sizes_are_validated():
    heads = MMKDHeads(H_S, H_T, proj_dim=16)
    x = torch.randn(B, H_S)
    assert heads.projector(x).shape == (B, H_T) and heads.predictor(heads.projector(x)).shape == (B, H_T)
    assert heads.projector[0].out_features == 16
    with pytest.raises(ValueError, match=r"proj_dim must be >= 1 \(got 0\)"):
        MMKDHeads(H_S, H_T, proj_dim=0)


def test_loss_weights_are_validated_by_the_schema():
    with pytest.raises(ValidationError, match="word"):
        DistillConfig(word=-1)
    with pytest.raises(ValidationError, match="triplet"):
        DistillConfig(triplet=float("nan"))  # a NaN weight would turn every total loss into NaN
