"""Each MMKD loss against a naive loop-based reference; gradients reach the student only; each level
goes down when a student is optimised toward a fixed teacher."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmkd.distill.losses import (
    LossWeights,
    MMKDHeads,
    masked_mean_pool,
    pool_spans,
    sentence_loss,
    structure_loss,
    token_kd,
    token_kd_topk,
    triplet_kd,
    word_align_loss,
)

torch.manual_seed(0)
B, L, V, S, H_S, H_T, W = 3, 5, 11, 7, 6, 8, 2


def _labels():
    labels = torch.randint(0, V, (B, L))
    labels[0, 3:] = -100
    return labels


def naive_token_kd(s_logits, t_logits, labels, T):
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for i in range(labels.shape[1]):
            if labels[b, i] == -100:
                continue
            p = torch.softmax(t_logits[b, i] / T, -1)
            q = torch.softmax(s_logits[b, i] / T, -1)
            total += sum(p[v] * (math.log(p[v]) - math.log(q[v])) for v in range(len(p)))
            count += 1
    return total / count * T * T


def test_token_kd_matches_the_naive_reference_and_topk_with_k_equal_v():
    s, t, labels = torch.randn(B, L, V), torch.randn(B, L, V), _labels()
    assert token_kd(s, t, labels, 2.0).item() == pytest.approx(
        float(naive_token_kd(s, t, labels, 2.0)), rel=1e-5
    )
    values, indices = t.topk(V, dim=-1)
    assert token_kd_topk(s, values, indices, labels, 2.0).item() == pytest.approx(
        token_kd(s, t, labels, 2.0).item(), rel=1e-5
    )


def test_token_kd_topk_matches_a_naive_reference():
    s, t, labels = torch.randn(B, L, V), torch.randn(B, L, V), _labels()
    values, indices = t.topk(4, dim=-1)
    total, count = 0.0, 0
    for b in range(B):
        for i in range(L):
            if labels[b, i] == -100:
                continue
            p = torch.softmax(values[b, i] / 2.0, -1)
            logq = torch.log_softmax(s[b, i] / 2.0, -1)
            total += sum(p[k] * (math.log(p[k]) - logq[indices[b, i, k]]) for k in range(4))
            count += 1
    assert token_kd_topk(s, values, indices, labels, 2.0).item() == pytest.approx(
        float(total / count * 4), rel=1e-5
    )


def test_token_kd_is_zero_with_grad_when_every_label_is_ignored():
    s = torch.randn(B, L, V, requires_grad=True)
    loss = token_kd(s, torch.randn(B, L, V), torch.full((B, L), -100))
    loss.backward()
    assert loss.item() == 0.0 and s.grad is not None


def test_pooling_matches_loops():
    states, mask = torch.randn(B, S, H_S), torch.rand(B, S) > 0.3
    mask[:, 0] = True
    pooled = masked_mean_pool(states, mask)
    for b in range(B):
        assert torch.allclose(pooled[b], states[b][mask[b]].mean(0), atol=1e-6)
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
    s = [proj(sw[b, w]) for b in range(B) for w in range(W) if mask[b, w]]
    t = [tw[b, w] for b in range(B) for w in range(W) if mask[b, w]]
    expected = 0.0
    for i in range(len(s)):
        sims = torch.stack([F.cosine_similarity(s[i], t[j], dim=0) / 0.1 for j in range(len(t))])
        expected += -(sims[i] - torch.logsumexp(sims, 0))
    expected /= len(s)
    got = word_align_loss(sw, tw, mask, proj, "contrastive", 0.1)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    mse = sum(((a - b) ** 2).mean() for a, b in zip(s, t, strict=True)) / len(s)
    assert word_align_loss(sw, tw, mask, proj, "mse").item() == pytest.approx(mse.item(), rel=1e-5)
    with pytest.raises(ValueError, match="'cosine'"):
        word_align_loss(sw, tw, mask, proj, "cosine")


def test_sentence_loss_matches_byol_formula():
    sp, tp = torch.randn(B, H_S), torch.randn(B, H_T)
    heads = MMKDHeads(H_S, H_T)
    expected = (
        sum(
            2 - 2 * F.cosine_similarity(heads.predictor(heads.projector(sp[b])), tp[b], dim=0)
            for b in range(B)
        )
        / B
    )
    assert sentence_loss(sp, tp, heads.projector, heads.predictor).item() == pytest.approx(
        expected.item(), rel=1e-5
    )


def test_structure_loss_matches_naive_reference_and_is_zero_for_the_same_structure():
    sp, tp = torch.randn(4, H_S), torch.randn(4, H_T)

    def rows(x):
        out = []
        for i in range(len(x)):
            sims = torch.stack([F.cosine_similarity(x[i], x[j], dim=0) for j in range(len(x)) if j != i])
            out.append(torch.softmax(sims, 0))
        return out

    expected = sum((p * (p.log() - q.log())).sum() for p, q in zip(rows(tp), rows(sp), strict=True)) / 4
    assert structure_loss(sp, tp).item() == pytest.approx(expected.item(), rel=1e-5)
    rotation = torch.linalg.qr(torch.randn(H_S, H_S))[0]  # same similarities, other coordinates
    assert structure_loss(sp @ rotation, sp).item() == pytest.approx(0.0, abs=1e-6)


def test_triplet_matches_naive_reference():
    s, t = torch.randn(B, H_T), torch.randn(B, H_T)
    expected = sum(max(0.0, (s[b] - t[b]).norm() - (s[b] - t[b - 1]).norm() + 1.0) for b in range(B)) / B
    assert triplet_kd(s, t).item() == pytest.approx(float(expected), rel=1e-4)
    assert triplet_kd(s[:1], t[:1]).item() == 0.0


def test_gradients_reach_the_student_and_heads_but_never_the_teacher():
    heads = MMKDHeads(H_S, H_T)
    s_states = torch.randn(B, S, H_S, requires_grad=True)
    t_states = torch.randn(B, S, H_T, requires_grad=True)
    t_logits = torch.randn(B, L, V, requires_grad=True)
    s_logits = torch.randn(B, L, V, requires_grad=True)
    mask, spans = torch.ones(B, S, dtype=torch.bool), torch.tensor([[[0, 3], [4, 7]]] * B)
    sp, tp = masked_mean_pool(s_states, mask), masked_mean_pool(t_states, mask)
    total = (
        token_kd(s_logits, t_logits, _labels())
        + word_align_loss(
            pool_spans(s_states, spans),
            pool_spans(t_states, spans),
            torch.ones(B, W, dtype=torch.bool),
            heads.word,
        )
        + sentence_loss(sp, tp, heads.projector, heads.predictor)
        + structure_loss(sp, tp)
        + triplet_kd(heads.projector(sp), tp)
    )
    total.backward()
    assert s_states.grad is not None and s_logits.grad is not None
    assert all(p.grad is not None for p in heads.parameters())
    assert t_states.grad is None and t_logits.grad is None


@pytest.mark.parametrize("level", ["token", "word", "sentence", "structure", "triplet"])
def test_each_level_decreases_when_the_student_is_optimised(level):
    torch.manual_seed(1)
    heads = MMKDHeads(H_S, H_T)
    student = torch.randn(6, S, H_S, requires_grad=True)
    teacher = torch.randn(6, S, H_T)
    logits, t_logits, labels = (
        torch.randn(6, L, V, requires_grad=True),
        torch.randn(6, L, V),
        torch.randint(0, V, (6, L)),
    )
    mask, spans = torch.ones(6, S, dtype=torch.bool), torch.tensor([[[0, 3], [3, 7]]] * 6)
    opt = torch.optim.Adam([student, logits, *heads.parameters()], lr=0.05)

    def loss():
        sp, tp = masked_mean_pool(student, mask), masked_mean_pool(teacher, mask)
        return {
            "token": lambda: token_kd(logits, t_logits, labels),
            "word": lambda: word_align_loss(
                pool_spans(student, spans),
                pool_spans(teacher, spans),
                torch.ones(6, W, dtype=torch.bool),
                heads.word,
            ),
            "sentence": lambda: sentence_loss(sp, tp, heads.projector, heads.predictor),
            "structure": lambda: structure_loss(sp, tp),
            "triplet": lambda: triplet_kd(heads.projector(sp), tp),
        }[level]()

    first = loss().item()
    for _ in range(60):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.5 * first


def test_shape_and_argument_errors_quote_the_values():
    with pytest.raises(ValueError, match=r"student \(3, 5, 11\)"):
        token_kd(torch.randn(B, L, V), torch.randn(B, L + 1, V), _labels())
    with pytest.raises(ValueError, match="temperature must be > 0"):
        token_kd(torch.randn(B, L, V), torch.randn(B, L, V), _labels(), temperature=0)
    with pytest.raises(ValueError, match=r"weight word must be >= 0 \(got -1\)"):
        LossWeights(word=-1)
    assert LossWeights(word=0.5, structure=10).active() == ["token", "word", "structure"]
