"""The built-in CLDR task: deterministic, parallel, English-only training, identifiable targets."""

import subprocess
import sys

import pytest
from transformers import ByT5Tokenizer

from mmkd.data import format_examples, get_task
from mmkd.data.cldr import LANGUAGES, LOW_RESOURCE
from mmkd.data.collate import batch_indices, encode_batch
from mmkd.data.languages import XTREME_R_LANGUAGES
from mmkd.errors import UserInputError
from mmkd.eval.langid import get_langid, reference_accuracy


@pytest.fixture(scope="module")
def task():
    return get_task("builtin/cldr", n_train=50, n_dev=24, n_test=10)


def test_suite_covers_20_xtreme_r_languages_with_8_low_resource(task):
    assert task.source_lang == "en" == task.languages[0]
    zero_shot = [lang for lang in task.languages if lang != "en"]
    assert len(zero_shot) >= 20 and set(zero_shot) <= set(XTREME_R_LANGUAGES)
    assert len(task.low_resource) >= 8 and set(task.low_resource) <= set(zero_shot)


def test_same_seed_same_examples_even_in_another_process():
    code = (
        "from mmkd.data import get_task as g; print(g('builtin/cldr', n_dev=5, seed=7).examples('dev', 'te'))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1
    other = get_task("builtin/cldr", n_dev=5, seed=8).examples("dev", "te")
    assert str(other) + "\n" != runs.pop()


def test_examples_are_parallel_with_aligned_spans(task):
    for split in ("train", "dev", "test"):
        by_lang = {lang: task.examples(split, lang) for lang in ("en", "de", "te", "my")}
        ids = {lang: [e.id for e in ex] for lang, ex in by_lang.items()}
        assert len({tuple(v) for v in ids.values()}) == 1
        for examples in by_lang.values():
            for e in examples:
                assert len(e.spans) == 2
                assert all(0 <= a < b <= len(e.source) for a, b in e.spans)
                assert e.source[e.spans[0][0] : e.spans[0][1]] + "; " + e.source[e.spans[1][0] :] == e.source


def test_targets_need_words_the_source_does_not_have(task):
    for lang in task.languages:
        for e in task.examples("dev", lang):
            assert e.target != e.source
            assert set(e.target.split()) - set(e.source.split()), (lang, e)
            assert sum(ch.isalpha() for ch in e.target) >= 3


def test_splits_do_not_share_records(task):
    train = {e.source for e in task.examples("train", "en")}
    dev = [e.source for e in task.examples("dev", "en")]
    assert len(set(dev) - train) > len(dev) // 2  # drawn from independent seeds


def test_lid_identifies_the_references_of_every_zero_shot_language(task):
    langid = get_langid("fasttext")
    for lang in task.languages[1:]:
        refs = [e.target for e in task.examples("dev", lang)]
        assert reference_accuracy(refs, lang, langid) >= 0.8, lang


def test_corpus_covers_every_language(task):
    for lang in LANGUAGES:
        lines = task.corpus(lang)
        assert len(lines) == 2000 and len(set(lines)) > 300


def test_bad_options_name_the_value():
    with pytest.raises(UserInputError, match=r"task.n_train: must be an integer >= 1 \(got 0\)"):
        get_task("builtin/cldr", n_train=0)
    with pytest.raises(UserInputError, match="'sw' cannot be scored"):
        get_task("builtin/cldr", languages=["sw"])
    with pytest.raises(UserInputError, match="did you mean 'te'"):
        get_task("builtin/cldr", languages=["tee"])
    task = get_task("builtin/cldr", languages=["te", "de"])
    assert task.languages == ("en", "de", "te") and task.low_resource == ("te",)
    with pytest.raises(UserInputError, match="language 'fr' is not in task"):
        task.examples("dev", "fr")
    with pytest.raises(UserInputError, match="did you mean 'dev'"):
        task.examples("dve", "en")


def test_format_examples_shows_source_and_target(task):
    text = format_examples(task, "dev", "de", 2)
    assert text.splitlines()[0] == "builtin/cldr · dev · de · 24 examples"
    assert text.count("source: in ") == 2 and text.count("target: vor ") == 2


def test_batches_are_a_function_of_the_step_and_pad_labels_with_ignore_index(task):
    assert batch_indices(100, 5, 8, 0) == batch_indices(100, 5, 8, 0) != batch_indices(100, 6, 8, 0)
    tok = ByT5Tokenizer()
    examples = task.examples("dev", "te")[:4]
    batch = encode_batch(tok, examples, max_source_len=40, max_target_len=30)
    assert batch["input_ids"].shape[0] == 4 and batch["input_ids"].shape[1] <= 40
    assert batch["labels"].shape[1] <= 30
    assert (batch["labels"] == -100).any() or batch["labels"].shape[1] == 30
    assert not (batch["labels"] == tok.pad_token_id).any()
    assert LOW_RESOURCE
