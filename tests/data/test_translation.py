"""Translation pairs between a task's parallel training records (the zoo's pretraining and a trial's
auxiliary translation), and the batches that mix them with the task."""

import random

import pytest

from mmkd.data import Example, get_task
from mmkd.data.collate import step_examples
from mmkd.data.translation import TranslationPairs
from mmkd.errors import UserInputError

LANGS = ["en", "sw", "te", "fr"]


@pytest.fixture(scope="module")
def task():
    return get_task("builtin/cldr", n_train=64, n_dev=4, languages=LANGS[1:])


def test_pairs_translate_one_training_record_field_to_field_between_two_languages(task):
    pairs = TranslationPairs(task, task.languages)
    train = {lang: {e.id: e for e in task.examples("train", lang)} for lang in task.languages}
    dev_and_test = {e.source for split in ("dev", "test") for e in task.examples(split, "sw")}
    drawn = pairs.sample(random.Random(0), 200)
    assert {e.lang for e in drawn} == set(task.languages)
    fields = set()
    for e in drawn:
        record, direction = e.id.split(":")
        a, b = direction.split(">")
        assert a != b and e.lang == b
        src, tgt = train[a][record], train[b][record]
        # Past to past or future to future, never the task's own past -> future.
        field = "source" if (e.source, e.target) == (src.source, tgt.source) else "target"
        assert (e.source, e.target) == (getattr(src, field), getattr(tgt, field))
        fields.add(field)
    assert fields == {"source", "target"}
    assert not {e.source for e in drawn} & dev_and_test


def test_pairs_are_a_function_of_seed_and_step_and_tagged_for_the_tiny_family(task):
    plain, tiny = TranslationPairs(task, task.languages), TranslationPairs(task, task.languages, "tiny")
    assert plain.for_step(0, 5, 8) == plain.for_step(0, 5, 8) != plain.for_step(0, 6, 8)
    for p, t in zip(plain.for_step(0, 5, 8), tiny.for_step(0, 5, 8), strict=True):
        assert t.source == f"<2{p.lang}> {p.source}" and t.target == p.target


def test_a_step_puts_the_task_examples_first_then_the_pairs(task):
    train = task.examples("train", "en")
    pairs = TranslationPairs(task, task.languages)
    idx, examples = step_examples(train, 3, 8, 0, pairs, 6)
    assert len(idx) == 2 and examples[:2] == [train[i] for i in idx]
    assert examples[2:] == pairs.for_step(0, 3, 6)
    assert step_examples(train, 3, 8, 0) == step_examples(train, 3, 8, 0, None, 0)


def test_a_task_without_parallel_records_has_no_pairs():
    class EnglishOnly:
        name = "english-only"

        def examples(self, split, lang):
            return [Example(f"{lang}-{i}", lang, "x", "y") for i in range(3)]

    with pytest.raises(UserInputError, match="no training record is translated into two of"):
        TranslationPairs(EnglishOnly(), ["en", "sw"])


def test_a_prefix_moves_the_spans_along():
    e = Example("i", "sw", "siku 3 zilizopita", "baada ya siku 3", ((5, 6), (0, 17)))
    tagged = e.with_prefix("<2sw> ")
    assert tagged.source == "<2sw> siku 3 zilizopita"
    assert [tagged.source[a:b] for a, b in tagged.spans] == ["3", "siku 3 zilizopita"]
    assert e.with_prefix("") is e


def test_no_input_or_reference_of_the_task_repeats_ten_bytes():
    """The quickstart's eval.no_repeat_ngram = 10 blocks degenerate loops, never a correct answer."""
    from mmkd.data.cldr import LANGUAGES, RECORDS, relative

    def repeats(data: bytes, n: int) -> bool:
        grams = [data[i : i + n] for i in range(len(data) - n + 1)]
        return len(grams) != len(set(grams))

    texts = [relative(c, u, lang, future) for lang in LANGUAGES for c, u in RECORDS for future in (0, 1)]
    assert not any(repeats(t.encode(), 10) for t in texts)
    assert any(repeats(t.encode(), 9) for t in texts)  # so 10 is the smallest safe setting
