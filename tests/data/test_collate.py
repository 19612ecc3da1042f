"""Batches: step-determined sampling, byte-level encoding with ignored padding, token spans."""

import pytest
from transformers import ByT5Tokenizer

from mmkd.data import get_task
from mmkd.data.collate import batch_indices, encode_batch, token_spans


@pytest.fixture(scope="module")
def tok():
    return ByT5Tokenizer()


@pytest.fixture(scope="module")
def examples():
    task = get_task("builtin/cldr", n_dev=8)
    return task.examples("dev", "en")[:2] + task.examples("dev", "te")[:2]


def test_batches_are_a_function_of_the_seed_and_step():
    assert batch_indices(100, 5, 8, 0) == batch_indices(100, 5, 8, 0)
    assert batch_indices(100, 5, 8, 0) != batch_indices(100, 6, 8, 0)
    assert batch_indices(100, 5, 8, 0) != batch_indices(100, 5, 8, 1)
    assert all(0 <= i < 100 for i in batch_indices(100, 5, 64, 0))


def test_encode_batch_pads_inputs_and_ignores_padded_labels(tok, examples):
    batch = encode_batch(tok, examples, max_source_len=80, max_target_len=64)
    longest = max(len(e.source.encode()) for e in examples) + 1  # one byte per token, then EOS
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (4, longest)
    assert batch["labels"].shape == (4, max(len(e.target.encode()) for e in examples) + 1)
    for row, e in enumerate(examples):
        n = len(e.source.encode()) + 1
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (longest - n)
        labels = batch["labels"][row]
        kept = labels[labels != -100].tolist()
        assert tok.decode(kept, skip_special_tokens=True) == e.target and kept[-1] == tok.eos_token_id
    assert not (batch["labels"] == tok.pad_token_id).any()


def test_encode_batch_truncates_to_the_limits(tok, examples):
    batch = encode_batch(tok, examples, max_source_len=10, max_target_len=6)
    assert batch["input_ids"].shape == (4, 10) and batch["labels"].shape == (4, 6)


def test_token_spans_point_at_the_aligned_bytes(tok, examples):
    batch = encode_batch(tok, examples, max_source_len=80, max_target_len=64)
    spans = token_spans(tok, examples, max_source_len=80)
    assert spans.shape == (4, 2, 2)
    for row, e in enumerate(examples):
        for (start, end), (a, b) in zip(spans[row].tolist(), e.spans, strict=True):
            assert tok.decode(batch["input_ids"][row, start:end]) == e.source[a:b]
    clipped = token_spans(tok, examples, max_source_len=4)
    assert clipped.max() <= 4
