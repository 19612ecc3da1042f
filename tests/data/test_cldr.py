"""The built-in CLDR task: deterministic, parallel, English-only training, short and identifiable targets."""

import re
import subprocess
import sys

import pytest

from mmkd.data import format_examples, get_task
from mmkd.data.cldr import CORPUS_JOIN, LANGUAGES, RECORDS, UNSCORABLE, relative
from mmkd.data.languages import RESOURCE_CLASS, XTREME_R_LANGUAGES
from mmkd.errors import UserInputError
from mmkd.eval.langid import get_langid, letters, reference_accuracy

# The documented bar for a kept language (module docstring of mmkd.data.cldr).
LID_ACCURACY = 0.95


@pytest.fixture(scope="module")
def task():
    return get_task("builtin/cldr", n_train=300, n_dev=48, n_test=60, corpus_lines=1500)


def test_suite_covers_20_xtreme_r_languages_with_a_documented_low_resource_group(task):
    assert task.source_lang == "en" == task.languages[0]
    zero_shot = task.languages[1:]
    assert len(zero_shot) >= 20 and set(zero_shot) <= set(XTREME_R_LANGUAGES)
    assert task.low_resource == tuple(lang for lang in zero_shot if RESOURCE_CLASS[lang] <= 2)
    assert len(task.low_resource) >= 8
    # every XTREME-R language is either offered or refused with a reason
    assert sorted([*LANGUAGES, *UNSCORABLE]) == sorted(XTREME_R_LANGUAGES)
    assert set(RESOURCE_CLASS) == set(XTREME_R_LANGUAGES)


def test_same_seed_same_examples_in_another_process_and_another_seed_differs():
    code = (
        "from mmkd.data import get_task as g; t = g('builtin/cldr', n_dev=5, seed=7, corpus_lines=50); "
        "print(t.examples('dev', 'te'), t.examples('train', 'en'), t.corpus('my'))"
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
    same = get_task("builtin/cldr", n_dev=5, seed=7, corpus_lines=50)
    assert runs == {f"{same.examples('dev', 'te')} {same.examples('train', 'en')} {same.corpus('my')}\n"}
    other = get_task("builtin/cldr", n_dev=5, seed=8, corpus_lines=50)
    assert other.examples("dev", "te") != same.examples("dev", "te")
    assert other.corpus("my") != same.corpus("my")


def test_examples_are_parallel_with_the_count_and_the_field_as_aligned_spans(task):
    for split in ("train", "dev", "test"):
        by_lang = {lang: task.examples(split, lang) for lang in task.languages}
        assert len({tuple(e.id for e in ex) for ex in by_lang.values()}) == 1
        assert all(e.lang == lang for lang, ex in by_lang.items() for e in ex)
        for i, english in enumerate(by_lang["en"]):
            counts = set()
            for examples in by_lang.values():
                e = examples[i]
                assert len(e.spans) == 2 and e.spans[1] == (0, len(e.source))
                start, end = e.spans[0]
                counts.add(e.source[start:end])
            assert counts == {re.search(r"\d+", english.source).group()}


def test_training_data_is_english(task):
    train = task.examples("train", "en")
    assert len(train) == 300 and {e.lang for e in train} == {"en"}
    assert reference_accuracy([e.target for e in train], "en", get_langid()) >= LID_ACCURACY


def test_targets_need_words_the_source_does_not_have(task):
    for lang in task.languages:
        for e in task.examples("dev", lang):
            assert set(e.target.split()) - set(e.source.split()), (lang, e)
            assert letters(e.target) >= 3, (lang, e)


def test_dev_and_test_ask_for_records_training_never_showed(task):
    sources = {split: {e.source for e in task.examples(split, "en")} for split in ("train", "dev", "test")}
    assert len(sources["dev"]) == 48 and len(sources["test"]) == 60
    assert not sources["train"] & sources["dev"]
    assert not sources["train"] & sources["test"]
    assert not sources["dev"] & sources["test"]


def test_every_record_fits_the_byte_budget_in_every_language():
    for lang in LANGUAGES:
        for count, unit in RECORDS:
            assert len(relative(count, unit, lang, False).encode()) <= 64, (lang, count, unit)
            assert len(relative(count, unit, lang, True).encode()) <= 64, (lang, count, unit)


def test_lid_identifies_the_references_of_every_language(task):
    langid = get_langid("fasttext")
    for lang in task.languages:
        refs = [e.target for e in task.examples("dev", lang)]
        assert reference_accuracy(refs, lang, langid) >= LID_ACCURACY, lang


def test_corpus_teaches_every_target_form_of_every_language(task):
    def template(text: str) -> str:
        return re.sub(r"\d+", "{0}", text)

    for lang in task.languages:
        lines = task.corpus(lang)
        assert len(lines) == 1500 and max(len(line.encode()) for line in lines) <= 95
        seen = {template(part) for line in lines for part in line.split(CORPUS_JOIN)}
        assert {template(relative(c, u, lang, True)) for c, u in RECORDS} <= seen, lang
        assert len(set(lines)) > 500  # not only relative times: names and dates too
        assert sum(CORPUS_JOIN in line for line in lines) > 300  # forms next to their mirror image


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_train": 0}, r"task.n_train: must be an integer >= 1 \(got 0\)"),
        ({"n_dev": 2.5}, r"task.n_dev: must be an integer >= 1 \(got 2.5\)"),
        ({"corpus_lines": True}, r"task.corpus_lines: must be an integer >= 1 \(got True\)"),
        ({"seed": "0"}, r"task.seed: must be an integer \(got '0'\)"),
        ({"languages": ["de"]}, r"'de' cannot be scored: lid.176 identifies 29% of its targets"),
        ({"languages": ["tee"]}, r"'tee' is not an XTREME-R language \(did you mean 'te'\?\)"),
        ({"languages": "te"}, r"task.languages: must be a list of language codes \(got 'te'\)"),
        ({"languages": ["en"]}, r"task.languages: must name at least one language besides 'en'"),
        ({"n_trian": 5}, r"task.n_trian: not an option of builtin/cldr \(did you mean 'n_train'\?\)"),
    ],
)
def test_bad_options_name_the_value(options, message):
    with pytest.raises(UserInputError, match=message):
        get_task("builtin/cldr", **options)


def test_a_language_subset_keeps_source_first_and_its_low_resource_members():
    task = get_task("builtin/cldr", languages=["te", "fr", "te"])
    assert task.languages == ("en", "fr", "te") and task.low_resource == ("te",)
    with pytest.raises(UserInputError, match="language 'ta' is not in task builtin/cldr"):
        task.examples("dev", "ta")
    with pytest.raises(UserInputError, match="language 'ta' is not in task builtin/cldr"):
        task.corpus("ta")
    with pytest.raises(UserInputError, match=r"split: unknown 'dve' \(did you mean 'dev'\?\)"):
        task.examples("dve", "en")


def test_format_examples_shows_sources_and_targets(task):
    text = format_examples(task, "dev", "fr", 2)
    first, second = task.examples("dev", "fr")[:2]
    assert text.splitlines() == [
        "builtin/cldr · dev · fr · 48 examples",
        "[dev-00000]",
        f"  source: {first.source}",
        f"  target: {first.target}",
        "[dev-00001]",
        f"  source: {second.source}",
        f"  target: {second.target}",
    ]
    assert first.source.startswith("il y a ") and first.target.startswith("dans ")
    with pytest.raises(UserInputError, match=r"-n: must be >= 0 \(got -1\)"):
        format_examples(task, "dev", "fr", -1)
