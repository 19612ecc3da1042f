"""``task.parallel_source``: translate-train data and parallel corpora from local copies in the exact schema
of the hub datasets (``facebook/mlqa`` translate-train, ``facebook/flores``, ``google/xtreme`` tatoeba),
aligned by id; bad sources and language pairs are one line; the hub out of reach is one line too."""

import json

import datasets
import pytest

from mmkd.cli import main
from mmkd.config import load
from mmkd.data import get_task
from mmkd.data.parallel import ParallelCorpus
from mmkd.errors import UserInputError


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def squad_row(id_, question, context, answer, title=None):
    row = {
        "id": id_,
        "context": context,
        "question": question,
        "answers": {"text": [answer], "answer_start": [context.index(answer)]},
    }
    return row if title is None else {"title": title, **row}  # facebook/mlqa has no title column


CITIES = [
    ("Paris", "France"),
    ("Nairobi", "Kenya"),
    ("Lima", "Peru"),
    ("Oslo", "Norway"),
    ("Hanoi", "Vietnam"),
]
SENTENCES = {  # FLORES-200 dev: the same sentence ids in every language config
    "eng_Latn": ["The river is long.", "Birds sing at dawn.", "The market opens early.",
                 "Rain fell all night."],
    "swh_Latn": ["Mto ni mrefu.", "Ndege huimba alfajiri.", "Soko hufunguliwa mapema.",
                 "Mvua ilinyesha usiku kucha."],
    "tel_Telu": ["నది పొడవుగా ఉంది.", "పక్షులు తెల్లవారుజామున పాడతాయి.", None, "రాత్రంతా వర్షం కురిసింది."],
}  # fmt: skip


def flores_row(i, sentence):
    return {"id": i + 1, "URL": f"https://en.wikinews.org/wiki/{i}", "domain": "wikinews", "topic": "nature",
            "has_image": 0, "has_hyperlink": 0, "sentence": sentence}  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel")
    write_jsonl(
        root / "SQuAD/train.jsonl",
        [squad_row(f"sq{i}", f"Where is {x}?", f"{x} is in {c}.", c, "T") for i, (x, c) in enumerate(CITIES)],
    )
    # MLQA's translate-train: SQuAD's question ids, in another order, one question never translated and
    # one id SQuAD does not have.
    german = [
        squad_row(f"sq{i}", f"Wo liegt {x}?", f"{x} liegt in {c}.", c) for i, (x, c) in enumerate(CITIES)
    ]
    write_jsonl(
        root / "mlqa-translate-train.de/train.jsonl",
        [*reversed(german[1:]), squad_row("other", "Wer?", "Niemand.", "Niemand")],
    )
    for config, sentences in SENTENCES.items():
        # Row order differs per language: alignment is by the id column, not by position.
        rows = [flores_row(i, s) for i, s in enumerate(sentences) if s is not None]
        write_jsonl(root / f"{config}/dev.jsonl", rows if config == "eng_Latn" else rows[::-1])
    write_jsonl(
        root / "tatoeba.swh/validation.jsonl",
        [
            {"source_sentence": "Ninapenda chai.\n", "target_sentence": "I like tea.\n", "source_lang": "swh",
             "target_lang": "eng"},
            {"source_sentence": "Yeye ni mwalimu.\n", "target_sentence": "She is a teacher.\n",
             "source_lang": "swh", "target_lang": "eng"},
        ],
    )  # fmt: skip
    return root


def test_translate_train_matches_each_translated_question_to_its_english_one_by_id(data_dir):
    task = get_task(
        "xtreme_r/mlqa",
        data_dir=str(data_dir),
        languages=["de"],
        n_train=4,
        parallel_source="translate_train",
    )
    english = {e.id: e for e in task.examples("train", "en")}
    german = {e.id: e for e in task.examples("train", "de")}
    assert len(english) == 4
    # Only translations of the English examples kept: never "other", never a question n_train dropped.
    assert set(german) == set(english) - {"sq0"}
    for id_, e in german.items():
        assert e.lang == "de" and e.source.startswith("question: Wo liegt")
        x = english[id_].source.split("Where is ")[1].split("?")[0]
        assert f"{x} liegt in" in e.source  # the same question, translated
        # The aligned fields (question, context) are the same count as in English: the word level.
        assert len(e.spans) == len(english[id_].spans) == 2
        assert e.source[slice(*e.spans[0])] == f"Wo liegt {x}?"


def test_translate_train_whose_ids_match_no_english_question_is_one_line(data_dir, tmp_path):
    for config in ("SQuAD", "mlqa-translate-train.de"):
        rows = (data_dir / config / "train.jsonl").read_text().splitlines()
        if config != "SQuAD":  # ids of another numbering: nothing to pair by id
            rows = [json.dumps({**json.loads(r), "id": f"x{i}"}) for i, r in enumerate(rows)]
        write_jsonl(tmp_path / config / "train.jsonl", [json.loads(r) for r in rows])
    task = get_task(
        "xtreme_r/mlqa", data_dir=str(tmp_path), languages=["de"], parallel_source="translate_train"
    )
    with pytest.raises(UserInputError, match=r"no de translate-train question has the id of an English") as e:
        task.examples("train", "de")
    assert "\n" not in str(e.value)


def test_without_a_source_the_qa_tasks_still_translate_nothing(data_dir):
    task = get_task("xtreme_r/mlqa", data_dir=str(data_dir), languages=["de"], n_train=4)
    assert task.examples("train", "de") == [] and task.parallel_corpus() is None


def test_flores_pairs_english_with_each_language_by_id_under_its_flores_code(data_dir):
    task = get_task(
        "xtreme_r/tydiqa", data_dir=str(data_dir), languages=["sw", "te"], parallel_source="flores"
    )
    assert task.examples("train", "sw") == []  # the corpus is not the task's data
    corpus = task.parallel_corpus()
    assert [e.source for e in corpus.english] == SENTENCES["eng_Latn"]
    assert all(e.lang == "en" and e.target == "" and e.spans == ((0, len(e.source)),) for e in corpus.english)
    for i, (english, translations) in enumerate(zip(corpus.english, corpus.translations, strict=True)):
        assert english.id == f"flores-{i + 1}"
        # sw -> swh_Latn, te -> tel_Telu; sentence 3 has no Telugu row, so only Swahili translates it.
        expected = {"sw": SENTENCES["swh_Latn"][i], "te": SENTENCES["tel_Telu"][i]}
        assert {lang: e.source for lang, e in translations.items()} == {
            lang: s for lang, s in expected.items() if s is not None
        }
        assert all(e.id == english.id and e.lang == lang for lang, e in translations.items())


def test_tatoeba_pairs_are_their_own_ids_and_lose_the_hub_rows_newlines(data_dir):
    corpus = get_task(
        "xtreme_r/tydiqa", data_dir=str(data_dir), languages=["sw"], parallel_source="tatoeba"
    ).parallel_corpus()
    assert [(e.id, e.source) for e in corpus.english] == [
        ("tatoeba-sw-0000", "I like tea."),
        ("tatoeba-sw-0001", "She is a teacher."),
    ]
    assert [t["sw"].source for t in corpus.translations] == ["Ninapenda chai.", "Yeye ni mwalimu."]


def test_a_steps_pairs_are_a_function_of_seed_and_step_in_languages_that_translate_them(data_dir):
    corpus = get_task(
        "xtreme_r/tydiqa", data_dir=str(data_dir), languages=["sw", "te"], parallel_source="flores"
    ).parallel_corpus()
    rows, english, views = corpus.for_step(0, 7, 64)
    assert (rows, english, views) == corpus.for_step(0, 7, 64)
    assert rows != corpus.for_step(0, 8, 64)[0]
    for row, e, view in zip(rows, english, views, strict=True):
        assert e is corpus.english[row] and view.id == e.id and view.lang in corpus.translations[row]
    assert {v.lang for v in views} == {"sw", "te"}
    assert all(v.lang == "sw" for r, v in zip(rows, views, strict=True) if r == 2)  # no Telugu for it


def test_an_empty_corpus_is_refused():
    with pytest.raises(UserInputError, match="no English sentence has a translation"):
        ParallelCorpus("flores", (), ())


@pytest.mark.parametrize(
    ("task", "options", "message"),
    [
        ("xtreme_r/tydiqa", {"parallel_source": "flores200"},
         "task.parallel_source: unknown 'flores200' (did you mean 'flores'?); sources: translate_train, "
         "flores, tatoeba"),
        ("xtreme_r/tydiqa", {"parallel_source": "translate_train"},
         "task.parallel_source: xtreme_r/tydiqa has no translate-train data on the hub; use a parallel "
         "corpus"),
        ("xtreme_r/xquad", {"parallel_source": "translate_train", "languages": ["de", "th", "el"]},
         "task.parallel_source: translate_train has no English-el/th pairs for xtreme_r/xquad (it has: "
         "ar de es"),
        ("xtreme_r/panx", {"parallel_source": "tatoeba", "languages": ["sw", "yo"]},
         "task.parallel_source: tatoeba has no English-yo pairs for xtreme_r/panx"),
        ("xtreme_r/tatoeba", {"parallel_source": "flores"},
         "task.parallel_source: xtreme_r/tatoeba is parallel data itself"),
        ("builtin/cldr", {"parallel_source": "flores"},
         "task.parallel_source: not an option of builtin/cldr"),
    ],
)  # fmt: skip
def test_unknown_sources_and_language_pairs_are_one_line(task, options, message):
    with pytest.raises(UserInputError) as e:
        get_task(task, **options)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_sweep_validate_refuses_a_bad_source_and_a_corpus_outside_parallel_mode(capsys):
    base = ["sweep", "validate", "xtreme_r_lowres"]
    assert main([*base, "--set", "task.parallel_source=flores"]) == 0
    capsys.readouterr()
    assert main([*base, "--set", "task.parallel_source=wikipedia"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "task.parallel_source" in err
    assert main([*base, "--set", "distill.parallel=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "task.parallel_source" in err and "set distill.parallel: true" in err


def test_the_shipped_real_task_sweeps_read_flores_in_parallel_input_mode():
    for name in ("xtreme_r_lowres", "xtreme_r_nllb"):
        sweep = load(name)
        assert sweep.distill.parallel and sweep.task.parallel_source == "flores"
        assert sweep.task_options()["parallel_source"] == "flores"


def test_a_corpus_out_of_reach_is_one_line_naming_the_config_and_the_local_copy(tmp_path, monkeypatch):
    # An empty cache, so that a copy cached on this machine cannot make the test pass or fail.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    task = get_task("xtreme_r/tydiqa", languages=["sw"], parallel_source="flores")  # builds offline
    with pytest.raises(UserInputError) as e:
        task.parallel_corpus()
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("xtreme_r/tydiqa: cannot load facebook/flores 'eng_Latn' split dev")
    assert "offline" in message and "data_dir=DIR" in message and "DIR/eng_Latn/dev.jsonl" in message
    with pytest.raises(UserInputError, match=r"data_dir .* has no facebook/flores 'eng_Latn' split dev"):
        get_task(
            "xtreme_r/tydiqa", languages=["sw"], parallel_source="flores", data_dir=str(tmp_path)
        ).parallel_corpus()
