"""QA F1/EM with MLQA's language-aware normalisation, and entity F1 of entity lists written as text."""

import pytest

from mmkd.eval.task_metrics import (
    entity_scores,
    exact_match,
    format_entities,
    join_tokens,
    normalize_answer,
    parse_entities,
    qa_scores,
    token_f1,
)


@pytest.mark.parametrize(
    "text, lang, expected",
    [
        ("The Eiffel Tower!", "en", "eiffel tower"),
        ("  a   dog's  life ", "en", "dogs life"),
        ("Los «Reyes» Católicos", "es", "reyes católicos"),  # Unicode quotes are punctuation
        ("Die Deutsche Bank", "de", "deutsche bank"),
        ("những chiếc xe", "vi", "xe"),
        ("القاهرة", "ar", "قاهرة"),  # MLQA drops every "ال"
        ("the house", "fr", "the house"),  # no articles where MLQA defines none
        ("«Die» Bank", "fr", "die bank"),
        ("北京大学。", "zh", "北 京 大 学"),
        ("iPhone 手机", "zh", "iphone 手 机"),  # Latin words stay whole among characters
        ("東京タワー", "ja", "東 京 タ ワ ー"),
        ("กรุงเทพ", "th", "ก รุ ง เ ท พ"),  # a vowel mark stays on its consonant
        ("กรุงเทพ", "en", "กรุงเทพ"),  # spaced languages are split on whitespace only
        ("Москва, Россия", "ru", "москва россия"),
    ],
)
def test_normalize_answer(text, lang, expected):
    assert normalize_answer(text, lang) == expected


def test_exact_match_and_f1_take_the_best_gold_answer():
    assert exact_match("the Nile", ["Amazon", "Nile"], "en") == 1.0
    assert exact_match("Nile river", "Nile", "en") == 0.0
    assert token_f1("Nile river", "Nile", "en") == pytest.approx(2 / 3)  # P 1/2, R 1
    assert token_f1("river", ["Nile", "the river Nile"], "en") == pytest.approx(2 / 3)  # P 1, R 1/2
    assert token_f1("", "Nile", "en") == token_f1("!", "Nile", "en") == 0.0
    # Character tokens give partial credit where whitespace tokens would give none.
    assert token_f1("北京", "北京大学", "zh") == pytest.approx(2 / 3)
    assert token_f1("北京", "北京大学", "en") == 0.0
    with pytest.raises(ValueError, match="no gold answer"):
        token_f1("x", [], "en")


def test_repeated_tokens_count_once_each():
    assert token_f1("the the Nile Nile", "Nile", "en") == pytest.approx(2 / 3)  # only one Nile matches


def test_qa_scores_are_corpus_means_in_percent():
    scores = qa_scores(["Nile", "Nile river", "x"], ["Nile", ["Nile", "Congo"], "y"], "en")
    assert scores == pytest.approx({"em": 100 / 3, "f1": 100 * (1 + 2 / 3 + 0) / 3})
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        qa_scores(["a", "b"], ["a"], "en")
    with pytest.raises(ValueError, match="empty corpus"):
        qa_scores([], [], "en")


def test_entities_round_trip_and_messy_outputs_parse_leniently():
    entities = [("PER", "Ada Lovelace"), ("LOC", "London")]
    assert format_entities(entities) == "PER: Ada Lovelace; LOC: London"
    assert parse_entities(format_entities(entities)) == entities
    assert parse_entities(" per :  Ada   Lovelace ;LOC:London;; garbage ; ORG: ") == entities
    assert parse_entities("") == parse_entities("none") == []
    assert parse_entities("LOC: 北 京") == [("LOC", "北京")]  # spacing between characters does not count


def test_join_tokens_spaces_words_but_not_characters_of_unspaced_scripts():
    assert join_tokens(["Ada", "Lovelace", "."]) == "Ada Lovelace ."
    assert join_tokens(["我", "住", "在", "北", "京", "。"]) == "我住在北京。"
    assert join_tokens(["在", "IBM", "工", "作"]) == "在 IBM 工作"


def test_entity_scores_are_micro_over_type_and_whole_mention():
    refs = ["PER: Ada Lovelace; LOC: London", "", "ORG: UN"]
    assert entity_scores(refs, refs) == {"precision": 100.0, "recall": 100.0, "f1": 100.0}
    preds = ["LOC: Ada Lovelace; LOC: London", "PER: Bob", "ORG: UN"]  # wrong type, spurious, right
    assert entity_scores(preds, refs) == pytest.approx({"precision": 50.0, "recall": 200 / 3, "f1": 400 / 7})
    assert entity_scores(["", "", ""], refs) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # A mention predicted twice matches the gold once.
    assert entity_scores(["ORG: UN; ORG: UN"], ["ORG: UN"]) == pytest.approx(
        {"precision": 50.0, "recall": 100.0, "f1": 200 / 3}
    )
