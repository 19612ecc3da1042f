"""Language-adaptive pretraining: a short stage moves the student towards the target languages' text."""

import pytest
import torch
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd.config import LAPTConfig
from mmkd.data import get_task
from mmkd.models.lapt import adapt, adapt_to_task, lapt_corpus, lapt_languages, span_corruption_loss
from mmkd.models.zoo import tiny_config


def _student():
    torch.manual_seed(0)
    return T5ForConditionalGeneration(tiny_config("xs")), ByT5Tokenizer()


def test_lapt_changes_the_weights_and_lowers_span_corruption_loss_on_held_out_target_text():
    task = get_task("builtin/cldr", languages=["sw", "te"], corpus_lines=300)
    corpus = lapt_corpus(task, ["sw", "te"])
    train, held_out = corpus[:400], corpus[400:]
    model, tok = _student()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss_before = span_corruption_loss(model, tok, held_out, max_len=64)
    stats = adapt(model, tok, train, steps=25, lr=3e-3, batch_size=8, max_len=64, seed=0)
    loss_after = span_corruption_loss(model, tok, held_out, max_len=64)
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)  # every weight, as in Chau & Smith
    assert loss_after < loss_before - 1.0, (loss_before, loss_after)
    assert stats["loss_end"] < stats["loss_start"]


def test_lapt_keeps_which_weights_are_trainable_and_is_seeded():
    model, tok = _student()
    model.requires_grad_(False)
    twin, _ = _student()
    corpus = ["baada ya miaka 23", "miaka 23 iliyopita", "saa 5 zilizopita", "baada ya siku 3"]
    first = adapt(model, tok, corpus, steps=3, lr=1e-3, batch_size=4, max_len=32, seed=1)
    second = adapt(twin, tok, corpus, steps=3, lr=1e-3, batch_size=4, max_len=32, seed=1)
    assert not any(p.requires_grad for p in model.parameters())
    assert first["loss_start"] == second["loss_start"] and first["loss_end"] == second["loss_end"]
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters(), strict=True))
    with pytest.raises(ValueError, match="no line of 4 tokens"):
        adapt(model, tok, ["ab"], steps=1, lr=1e-3, batch_size=2, max_len=32, seed=0)


def test_targets_are_the_evaluation_languages_but_the_source_and_the_corpus_interleaves_them():
    task = get_task("builtin/cldr", languages=["sw", "te"], corpus_lines=5)
    assert lapt_languages(task, "targets") == ["sw", "te"]
    assert lapt_languages(task, ["te"]) == ["te"]
    corpus = lapt_corpus(task, ["sw", "te"])
    assert corpus[:2] == [task.corpus("sw")[0], task.corpus("te")[0]] and len(corpus) == 10
    model, tok = _student()
    stats = adapt_to_task(model, tok, task, LAPTConfig(steps=2, batch_size=2), max_len=32, seed=0)
    assert set(stats) == {"loss_start", "loss_end", "seconds"}
