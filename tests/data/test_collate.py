"""Batches: step-determined sampling, byte-level encoding with ignored padding, token spans."""

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import ByT5Tokenizer, PreTrainedTokenizerFast

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


LANG = "swh_Latn"


class LangByT5Tokenizer(ByT5Tokenizer):
    """ByT5 with a language token first, as NLLB-200 and mBART-50 put one: a slow tokenizer with a prefix."""

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        lang = self.convert_tokens_to_ids("<extra_id_0>")
        return [lang, *super().build_inputs_with_special_tokens(token_ids_0, token_ids_1)]

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens=False):
        return [1, *super().get_special_tokens_mask(token_ids_0, token_ids_1, already_has_special_tokens)]


def _subword_tokenizer_with_a_language_token(texts):
    """A SentencePiece-like BPE (NLLB-200's shape: language token, text, </s>), trained here, offline."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<pad>", "</s>", "<unk>", LANG]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{LANG} $A </s>", special_tokens=[(t, tok.token_to_id(t)) for t in (LANG, "</s>")]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


@pytest.mark.parametrize("kind", ["fast-subword", "slow-bytes"])
def test_token_spans_index_the_encoder_input_after_a_leading_language_token(kind):
    examples = get_task("builtin/cldr", n_train=40).examples("train", "en")
    if kind == "fast-subword":
        tok = _subword_tokenizer_with_a_language_token([e.source for e in examples])
    else:
        tok = LangByT5Tokenizer()
    batch = encode_batch(tok, examples, max_source_len=128, max_target_len=64)
    assert tok.convert_ids_to_tokens(int(batch["input_ids"][0, 0])) in {LANG, "<extra_id_0>"}
    spans = token_spans(tok, examples, max_source_len=128)
    for row, e in enumerate(examples):
        for (start, end), (a, b) in zip(spans[row].tolist(), e.spans, strict=True):
            assert start >= 1 and end > start
            assert tok.decode(batch["input_ids"][row, start:end]).strip() == e.source[a:b].strip()
    # Truncated: every span stays inside the text tokens (the last position is </s>).
    short = token_spans(tok, examples, max_source_len=6)
    assert short.max() <= 5 and ((short[..., 1] > short[..., 0]) | (short[..., 0] == 5)).all()
