"""XTREME-R tasks from local copies in the hub's exact schema; a clear error when the hub is out of reach."""

import json

import datasets
import pytest

from mmkd.cli import main
from mmkd.data import TASKS, format_examples, get_task
from mmkd.data.languages import XTREME_R_LANGUAGES
from mmkd.data.xtreme_r import low_resource_group
from mmkd.errors import UserInputError
from mmkd.eval.task_metrics import entity_scores, parse_entities, qa_scores

NAMES = ["xtreme_r/xquad", "xtreme_r/mlqa", "xtreme_r/tydiqa", "xtreme_r/panx", "xtreme_r/tatoeba"]


def squad_row(id_, question, context, answer, title="T"):
    return {
        "id": id_,
        "title": title,
        "context": context,
        "question": question,
        "answers": {"text": [answer], "answer_start": [context.index(answer)]},
    }


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


# XQuAD: the same 30 questions in three languages (ids shared, as on the hub).
CITIES = [
    ("Paris", "France"),
    ("Nairobi", "Kenya"),
    ("Lima", "Peru"),
    ("Oslo", "Norway"),
    ("Hanoi", "Vietnam"),
]
XQUAD = {
    "en": ("What is the capital of {c}?", "The capital of {c} is {x}."),
    "de": ("Was ist die Hauptstadt von {c}?", "Die Hauptstadt von {c} ist {x}."),
    "th": ("เมืองหลวงของ {c} คืออะไร", "เมืองหลวงของ {c} คือ {x}"),
}
SW_TAGS = datasets.ClassLabel(names=["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("xtreme_r")
    write_jsonl(
        root / "SQuAD/train.jsonl",
        [squad_row(f"sq{i}", f"Where is {x}?", f"{x} is in {c}.", c) for i, (x, c) in enumerate(CITIES)],
    )
    for lang, (q, ctx) in XQUAD.items():
        rows = [
            squad_row(f"xq{i:02d}", q.format(c=c), ctx.format(c=c, x=x), x)
            for i, (x, c) in enumerate(CITIES * 6)
        ]
        write_jsonl(root / f"XQuAD.{lang}/validation.jsonl", rows)
    for lang in ("en", "de"):
        for split in ("validation", "test"):
            rows = [
                squad_row(f"ml-{split}-{i}", f"{lang} q{i}?", f"{lang} context {i} A{i}.", f"A{i}")
                for i in range(4)
            ]
            write_jsonl(root / f"MLQA.{lang}.{lang}/{split}.jsonl", rows)
    tydi = {
        "train": [("english", 8), ("swahili", 5)],
        "validation": [("english", 10), ("swahili", 20), ("telugu", 10)],
    }
    for split, langs in tydi.items():
        rows = [
            squad_row(f"{name}-{i}-0", f"{name} swali {i}?", f"{name} jibu J{i} hapa.", f"J{i}")
            for name, n in langs
            for i in range(n)
        ]
        write_jsonl(root / f"tydiqa/{split}.jsonl", rows)
    en_ner = [
        {
            "tokens": ["Ada", "Lovelace", "lived", "in", "London", "."],
            "ner_tags": ["B-PER", "I-PER", "O", "O", "B-LOC", "O"],
        },
        {"tokens": ["Nothing", "here", "."], "ner_tags": ["O", "O", "O"]},
        {"tokens": ["UN", "and", "EU"], "ner_tags": ["B-ORG", "O", "B-ORG"]},
    ]
    for split in ("train", "validation", "test"):
        write_jsonl(root / f"en/{split}.jsonl", en_ner)
    sw = {
        "tokens": [["Juma", "Kassim", "anaishi", "Dodoma"], ["Benki", "Kuu", "ya", "Tanzania"]],
        "ner_tags": [[1, 2, 0, 5], [3, 4, 4, 4]],
        "langs": [["sw"] * 4, ["sw"] * 4],
    }
    features = datasets.Features(
        {
            "tokens": datasets.List(datasets.Value("string")),
            "ner_tags": datasets.List(SW_TAGS),
            "langs": datasets.List(datasets.Value("string")),
        }
    )
    split = datasets.Dataset.from_dict(sw, features=features)
    datasets.DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(str(root / "sw"))
    zh = [
        {"tokens": ["我", "住", "在", "北", "京", "。"], "ner_tags": ["O", "O", "O", "B-LOC", "I-LOC", "O"]}
    ]
    write_jsonl(root / "zh/validation.jsonl", zh)
    for code, lang_rows in {
        "swh": [(f"Ninapenda chai {i}.", f"I like tea {i}.") for i in range(40)],
        "tel": [(f"నాకు టీ ఇష్టం {i}.", f"I like tea number {i}.") for i in range(30)],
    }.items():
        rows = [
            {
                "source_sentence": f"{s}\n",
                "target_sentence": f"{t}\n",
                "source_lang": code,
                "target_lang": "eng",
            }
            for s, t in lang_rows
        ]
        write_jsonl(root / f"tatoeba.{code}/validation.jsonl", rows)
    return str(root)


@pytest.fixture
def no_hub(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"load_dataset{args} called")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


def test_all_five_tasks_register_and_build_without_touching_hub_or_disk(no_hub, tmp_path):
    assert set(NAMES) <= set(TASKS.names())
    for name in NAMES:
        task = get_task(name, n_train=10, n_dev=5, seed=0)
        assert task.name == name and task.source_lang == "en" == task.languages[0]
        assert set(task.languages) <= set(XTREME_R_LANGUAGES)
        get_task(name, data_dir=str(tmp_path / "nowhere"))  # not checked until data is needed
    with pytest.raises(UserInputError, match="nowhere has no google/xtreme 'tydiqa' split validation"):
        get_task("xtreme_r/tydiqa", data_dir=str(tmp_path / "nowhere")).examples("dev", "sw")


@pytest.mark.parametrize(
    "name, group",
    [
        ("xtreme_r/xquad", ("el", "th")),
        ("xtreme_r/mlqa", ("hi", "vi")),
        ("xtreme_r/tydiqa", ("sw", "te")),
        ("xtreme_r/panx", tuple("az gu jv ml mr my pa qu sw te yo".split())),
        ("xtreme_r/tatoeba", tuple("jv ml mr sw te".split())),
    ],
)
def test_low_resource_group_per_task_is_the_documented_one(name, group):
    task = get_task(name)
    assert task.low_resource == group == low_resource_group(task.languages)
    narrowed = get_task(name, languages=[group[0], *(x for x in task.languages[1:] if x not in group)][:3])
    assert narrowed.low_resource == (group[0],)


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"languages": ["sw"]},
            "task.languages: 'sw' is an XTREME-R language xtreme_r/xquad has no data for",
        ),
        ({"languages": ["dee"]}, "'dee' is not an XTREME-R language (did you mean 'de'?)"),
        ({"languages": ["en"]}, "must name at least one language besides 'en'"),
        ({"languages": "de"}, "task.languages: must be a list"),
        ({"n_dev": 0}, "task.n_dev: must be an integer >= 1 (got 0)"),
        ({"n_test": 0}, "task.n_test: must be an integer >= 1 or null (got 0)"),
        ({"data_dir": 3}, "task.data_dir: must be a folder path (got 3)"),
        ({"path": "x"}, "task.path: not an option of xtreme_r/xquad"),
    ],
)
def test_bad_options_are_one_line_naming_key_and_value(options, message):
    with pytest.raises(UserInputError) as err:
        get_task("xtreme_r/xquad", **options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_xquad_is_parallel_generative_qa_with_aligned_question_and_context(data_dir, no_hub):
    task = get_task("xtreme_r/xquad", data_dir=data_dir, languages=["de", "th"], n_dev=100)
    assert task.languages == ("en", "de", "th") and task.low_resource == ("th",)
    ids = {}
    for lang in task.languages:
        dev, test = task.examples("dev", lang), task.examples("test", lang)
        assert len(dev) + len(test) == 30 and dev and test
        ids[lang] = ([e.id for e in dev], [e.id for e in test])
        for e in dev + test:
            (qa, qz), (ca, cz) = e.spans
            assert e.source == f"question: {e.source[qa:qz]} context: {e.source[ca:cz]}"
            assert e.target in e.source[ca:cz] and e.lang == lang
    assert ids["en"] == ids["de"] == ids["th"]  # same split, same order in every language
    de = task.examples("dev", "de")[0]
    assert (
        de.source.startswith("question: Was ist die Hauptstadt von ")
        and " context: Die Hauptstadt" in de.source
    )
    train = task.examples("train", "en")
    assert sorted(e.target for e in train) == sorted(c for _, c in CITIES)
    assert task.examples("train", "de") == []  # no human translation of SQuAD: no parallel inputs
    assert set(task.corpus("de")) == {e.source[slice(*e.spans[1])] for e in task.examples("dev", "de")}


def test_sizes_cap_and_the_seed_orders_but_never_moves_examples_between_dev_and_test(data_dir):
    full = get_task("xtreme_r/xquad", data_dir=data_dir, n_dev=100)
    capped = get_task("xtreme_r/xquad", data_dir=data_dir, n_train=2, n_dev=1, n_test=3)
    assert len(capped.examples("train", "en")) == 2 and len(capped.examples("test", "de")) == 3
    assert capped.examples("dev", "th") == full.examples("dev", "th")[:1]
    reseeded = get_task("xtreme_r/xquad", data_dir=data_dir, n_dev=100, seed=1)
    for split in ("dev", "test"):
        mine, theirs = full.examples(split, "de"), reseeded.examples(split, "de")
        assert sorted(e.id for e in mine) == sorted(e.id for e in theirs) and mine != theirs


def test_mlqa_reads_dev_and_test_and_qa_metrics_score_the_targets(data_dir):
    task = get_task("xtreme_r/mlqa", data_dir=data_dir, languages=["de"], n_dev=10)
    dev, test = task.examples("dev", "de"), task.examples("test", "de")
    assert {e.id for e in dev} == {f"ml-validation-{i}" for i in range(4)}
    assert {e.id for e in test} == {f"ml-test-{i}" for i in range(4)}
    refs = [e.target for e in test]
    assert qa_scores(refs, refs, "de") == {"f1": 100.0, "em": 100.0}
    assert qa_scores(["Die " + r for r in refs], refs, "de")["em"] == 100.0  # article dropped
    assert qa_scores(["nichts"] * 4, refs, "de") == {"f1": 0.0, "em": 0.0}


def test_tydiqa_tells_languages_apart_by_id_and_trains_on_english_only(data_dir):
    task = get_task("xtreme_r/tydiqa", data_dir=data_dir, languages=["sw", "te"], n_train=100, n_dev=100)
    assert task.languages == ("en", "sw", "te") and task.low_resource == ("sw", "te")
    train = task.examples("train", "en")
    assert len(train) == 8 and all(e.id.startswith("english-") for e in train)
    assert task.examples("train", "sw") == []
    sw = task.examples("dev", "sw") + task.examples("test", "sw")
    assert len(sw) == 20 and all(e.id.startswith("swahili-") and e.lang == "sw" for e in sw)
    assert len(task.examples("dev", "te") + task.examples("test", "te")) == 10
    shown = format_examples(task, "test", "sw", 1)
    assert shown.startswith("xtreme_r/tydiqa · test · sw · ") and "question: swahili swali" in shown


def test_panx_entities_as_text_from_jsonl_tag_names_and_saved_class_labels(data_dir):
    task = get_task("xtreme_r/panx", data_dir=data_dir, languages=["sw", "zh"], n_dev=10)
    by_source = {e.source: e.target for e in task.examples("train", "en")}
    assert by_source == {
        "Ada Lovelace lived in London .": "PER: Ada Lovelace; LOC: London",
        "Nothing here .": "",
        "UN and EU": "ORG: UN; ORG: EU",
    }
    sw = {e.source: e.target for e in task.examples("test", "sw")}  # save_to_disk, ner_tags as ClassLabel ids
    assert sw == {
        "Juma Kassim anaishi Dodoma": "PER: Juma Kassim; LOC: Dodoma",
        "Benki Kuu ya Tanzania": "ORG: Benki Kuu ya Tanzania",
    }
    (zh,) = task.examples("dev", "zh")  # WikiANN splits Chinese into characters: rejoined without spaces
    assert (zh.source, zh.target) == ("我住在北京。", "LOC: 北京")
    assert parse_entities(zh.target) == [("LOC", "北京")]
    assert task.examples("train", "sw") == []
    test = task.examples("test", "sw")
    refs = [e.target for e in test]
    assert entity_scores(refs, refs)["f1"] == 100.0
    # One wrong mention (PER Juma for PER Juma Kassim) and one missed (LOC Dodoma) of three.
    partial = entity_scores(["PER: Juma" if "Juma" in e.source else e.target for e in test], refs)
    assert partial == pytest.approx({"precision": 50.0, "recall": 100 / 3, "f1": 40.0})


def test_tatoeba_pairs_are_parallel_by_id_and_targets_stay_in_the_input_language(data_dir):
    task = get_task("xtreme_r/tatoeba", data_dir=data_dir, languages=["sw", "te"], n_train=1000, n_dev=1000)
    assert task.low_resource == ("sw", "te")
    english = {split: task.examples(split, "en") for split in ("train", "dev", "test")}
    assert sum(map(len, english.values())) == 70
    assert {e.id.split("-")[1] for e in english["train"]} == {"sw", "te"}
    for split in ("train", "dev", "test"):
        en = {e.id: e for e in english[split]}
        for lang in ("sw", "te"):
            examples = task.examples(split, lang)
            assert examples and all(e.id in en and e.source == e.target and e.lang == lang for e in examples)
            assert all(not e.source.endswith("\n") for e in examples)
        assert all(e.source == e.target and e.source.startswith("I like tea") for e in en.values())
    sw = {e.id: e.source for e in task.examples("train", "sw")}
    en = {e.id: e.source for e in english["train"]}
    assert all(en[i] == "I like tea " + s.removeprefix("Ninapenda chai ") for i, s in sw.items())
    # A smaller English train keeps only the translations of what it kept.
    small = get_task("xtreme_r/tatoeba", data_dir=data_dir, languages=["sw", "te"], n_train=5)
    kept = {e.id for e in small.examples("train", "en")}
    assert len(kept) == 5 and {e.id for e in small.examples("train", "sw")} <= kept


def test_files_in_the_wrong_schema_are_named(tmp_path):
    write_jsonl(
        tmp_path / "tydiqa/validation.jsonl", [{"id": "swahili-1-0", "question": "q?", "context": "c"}]
    )
    with pytest.raises(UserInputError, match=r"'tydiqa' split validation row 0: field 'answers' is not in"):
        get_task("xtreme_r/tydiqa", data_dir=str(tmp_path)).examples("dev", "sw")
    (tmp_path / "XQuAD.de").mkdir()
    (tmp_path / "XQuAD.de/validation.jsonl").write_text('{"id": 1}\n{oops\n')
    with pytest.raises(UserInputError, match=r"XQuAD.de/validation.jsonl:2: not valid JSON"):
        get_task("xtreme_r/xquad", data_dir=str(tmp_path)).examples("dev", "de")
    write_jsonl(tmp_path / "de/validation.jsonl", [{"tokens": ["a", "b"], "ner_tags": ["O", "X-PER"]}])
    with pytest.raises(UserInputError, match="row 0: tag 'X-PER' is not O, B-TYPE or I-TYPE"):
        get_task("xtreme_r/panx", data_dir=str(tmp_path)).examples("dev", "de")
    write_jsonl(tmp_path / "de/test.jsonl", [{"tokens": ["a", "b"], "ner_tags": [0, 7]}])
    with pytest.raises(
        UserInputError, match="row 0: tag 7 is neither a tag name nor one of WikiANN's 7 class"
    ):
        get_task("xtreme_r/panx", data_dir=str(tmp_path)).examples("test", "de")


def test_hub_data_without_the_hub_is_exit_2_with_one_line_saying_how_to_give_a_local_copy(
    tmp_path, monkeypatch, capsys
):
    # An empty cache, so that a copy cached on this machine cannot make the test pass or fail.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    assert main(["data", "show", "xtreme_r/tydiqa", "--lang", "sw"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mmkd: error: xtreme_r/tydiqa: cannot load google/xtreme 'tydiqa' split validation")
    assert "offline" in err and "data_dir=DIR" in err and "DIR/tydiqa/validation.jsonl" in err


def test_a_question_with_several_gold_answers_keeps_them_all(tmp_path):
    rows = [
        {
            "id": f"swahili-{i}-0",
            "title": "",
            "context": "Mji mkuu ni Dodoma, mjini Dodoma.",
            "question": "Mji mkuu ni upi?",
            "answers": {"text": ["Dodoma", "mjini Dodoma", "Dodoma"], "answer_start": [12, 20, 12]},
        }
        for i in range(20)
    ]
    write_jsonl(tmp_path / "tydiqa/validation.jsonl", rows)
    task = get_task("xtreme_r/tydiqa", data_dir=str(tmp_path), languages=["sw"], n_dev=50)
    (example, *_) = task.examples("dev", "sw") + task.examples("test", "sw")
    assert example.target == "Dodoma"
    assert example.golds == example.references == ("Dodoma", "mjini Dodoma")  # duplicates dropped
    assert qa_scores(["mjini Dodoma"], [example.references], "sw") == {"f1": 100.0, "em": 100.0}
