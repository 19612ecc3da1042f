"""A parallel corpus on the encoder-side levels: the student's encoder reads the translations, the teacher
the English sentences, from the cache rows after the training examples; cached and live teachers agree."""

import pytest
import torch
from transformers import ByT5Tokenizer, T5ForConditionalGeneration

from mmkd.config import load
from mmkd.data import Example
from mmkd.data.collate import encode_batch, token_spans
from mmkd.data.parallel import ParallelCorpus
from mmkd.distill.cache import CachedTeacher, CacheSettings, LiveTeacher, TeacherOutputs, build_sharded
from mmkd.distill.losses import MMKDHeads
from mmkd.models.langcodes import tagged
from mmkd.models.zoo import tiny_config
from mmkd.trial import _corpus_view, loss_step

ENGLISH = ["The river is long.", "Birds sing at dawn.", "The market opens early."]
SWAHILI = ["Mto ni mrefu.", "Ndege huimba alfajiri.", "Soko hufunguliwa mapema."]
TELUGU = ["నది పొడవుగా ఉంది.", "పక్షులు తెల్లవారుజామున పాడతాయి.", None]


def sentence(text, lang, i):
    return Example(f"flores-{i}", lang, text, "" if lang == "en" else text, ((0, len(text)),))


@pytest.fixture(scope="module")
def corpus():
    english = tuple(sentence(t, "en", i) for i, t in enumerate(ENGLISH))
    translations = tuple(
        {lang: sentence(t, lang, i) for lang, t in (("sw", sw), ("te", te)) if t is not None}
        for i, (sw, te) in enumerate(zip(SWAHILI, TELUGU, strict=True))
    )
    return ParallelCorpus("flores", english, translations)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return (
        ByT5Tokenizer(),
        T5ForConditionalGeneration(tiny_config("s")).eval(),
        T5ForConditionalGeneration(tiny_config("xs")),
    )


# QA-like training examples: two aligned fields each, as the real tasks' (question, context).
TRAIN = [
    Example(f"q{i}", "en", f"question: Where is {x}? context: {x} is in {c}.", c,
            ((10, 20 + len(x)), (30 + len(x), 38 + 2 * len(x) + len(c))))
    for i, (x, c) in enumerate([("Paris", "France"), ("Lima", "Peru"), ("Oslo", "Norway")])
]  # fmt: skip


class _Recorder:
    """A teacher that records what it is asked and answers with zeros of the right shapes."""

    hidden_size = 8

    def __init__(self):
        self.calls = []

    def outputs(self, indices, batch, spans):
        self.calls.append((list(indices), batch, spans))
        n, w = spans.shape[:2]
        return TeacherOutputs(
            torch.zeros(n, 1, 2), torch.zeros(n, 1, 2), torch.zeros(n, 8), torch.zeros(n, w, 8)
        )


def test_the_student_reads_translations_and_the_teacher_their_english_from_rows_after_the_train(corpus):
    tok, sweep, teacher = ByT5Tokenizer(), load("quickstart"), _Recorder()
    step = (0, 3, 16)
    view, (_, eng_spans) = _corpus_view(
        tok, "tiny", corpus, step, 100, teacher, sweep.train, torch.device("cpu")
    )
    rows, english, translations = corpus.for_step(*step)
    [(indices, eng_batch, spans)] = teacher.calls
    assert indices == [100 + r for r in rows]  # the cache rows of the corpus's English sentences
    read = tok.batch_decode(eng_batch["input_ids"], skip_special_tokens=True)
    assert read == [f"<2en> {ENGLISH[r]}" for r in rows]  # tagged as the tiny family reads its inputs
    seen = tok.batch_decode(view["input_ids"], skip_special_tokens=True)
    assert seen == [f"<2{t.lang}> {t.source}" for t in translations]
    assert {t.lang for t in translations} == {"sw", "te"}
    assert all(t.source in (SWAHILI[r], TELUGU[r]) for r, t in zip(rows, translations, strict=True))
    # One aligned field each, the whole sentence after the tag, on both sides.
    assert view["spans"].shape == eng_spans.shape == (16, 1, 2) and torch.equal(spans, eng_spans)
    tag = len(b"<2en> ")
    assert eng_spans[0, 0].tolist() == [tag, tag + len(english[0].source.encode())]


def test_cached_corpus_rows_give_the_live_teachers_encoder_losses(corpus, models, tmp_path):
    tok, teacher, student = models
    sweep = load("quickstart")
    # As ensure_cache writes it: the tagged training examples, then the corpus's English sentences.
    train = tagged("tiny", TRAIN)
    settings = CacheSettings(k=8, max_source_len=128, max_target_len=32, batch_size=2)
    rows = tagged("tiny", TRAIN + list(corpus.english))
    path = build_sharded(lambda: (teacher, tok), rows, tmp_path / "c.safetensors", 1, settings)
    heads = MMKDHeads(student.config.d_model, teacher.config.d_model)
    distill = sweep.distill.model_copy(
        update={"word": 1.0, "sentence": 1.0, "structure": 1.0, "parallel": True}
    )
    batch, spans = encode_batch(tok, train, 128, 32), token_spans(tok, train, 128)
    losses = []
    for t in (CachedTeacher(path), LiveTeacher(teacher, 8)):
        view, encoder = _corpus_view(
            tok, "tiny", corpus, (0, 1, 3), len(TRAIN), t, sweep.train, torch.device("cpu")
        )
        torch.manual_seed(0)
        _, terms = loss_step(
            student, heads, batch, spans, t.outputs([0, 1, 2], batch, spans), distill, view, encoder
        )
        losses.append(terms)
    cached, live = losses
    for term in ("word", "sentence", "structure", "token"):
        assert cached[term] == pytest.approx(live[term], rel=2e-2, abs=1e-3), term
    # The corpus rows are read, not the training rows: with the English task examples' teacher outputs
    # on the corpus view, the sentence-level terms differ.
    t = CachedTeacher(path)
    view, _ = _corpus_view(tok, "tiny", corpus, (0, 1, 3), len(TRAIN), t, sweep.train, torch.device("cpu"))
    outputs, sentence_only = t.outputs([0, 1, 2], batch, spans), distill.model_copy(update={"word": 0.0})
    _, wrong = loss_step(student, heads, batch, spans, outputs, sentence_only, view, (outputs, spans))
    assert wrong["sentence"] != pytest.approx(cached["sentence"], rel=1e-3)
