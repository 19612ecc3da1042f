"""WLR on hand-written sentences with exactly known answers (real fastText lid.176, offline)."""

import math

import pytest

from mmkd.eval.langid import get_langid, normalize_lang, reference_accuracy, verdicts, wlr_stats

SENTENCES = {
    "en": "The weather is lovely today and we are going to the beach.",
    "de": "Das Wetter ist heute schön und wir fahren an den Strand.",
    "fr": "Il fait beau aujourd'hui et nous allons à la plage.",
    "es": "Hoy hace buen tiempo y vamos a ir a la playa.",
    "ru": "Сегодня прекрасная погода, и мы едем на пляж.",
    "ar": "الطقس جميل اليوم ونحن ذاهبون إلى الشاطئ.",
    "hi": "आज मौसम बहुत अच्छा है और हम समुद्र तट पर जा रहे हैं।",
    "zh": "今天天气很好，我们要去海滩。",
    "ja": "今日は天気が良いので、私たちは海に行きます。",
    "te": "ఈ రోజు వాతావరణం చాలా బాగుంది, మేము బీచ్‌కి వెళ్తున్నాము.",
    "ta": "இன்று வானிலை நன்றாக இருக்கிறது, நாங்கள் கடற்கரைக்குச் செல்கிறோம்.",
    "tr": "Bugün hava çok güzel ve sahile gidiyoruz.",
}


@pytest.fixture(scope="module")
def lid():
    return get_langid("fasttext")


def test_each_sentence_is_right_in_its_language_and_wrong_in_any_other(lid):
    for lang, text in SENTENCES.items():
        assert verdicts([text], lang, lid) == [("right", lang)], lang
        other = "de" if lang != "de" else "fr"
        assert verdicts([text], other, lid)[0][0] == "wrong"


def test_wlr_counts_wrong_over_determined_and_keeps_undetermined_apart(lid):
    outputs = [
        SENTENCES["te"],  # right
        SENTENCES["te"].replace("ఈ", "ఆ"),  # right
        SENTENCES["en"],  # wrong, and in the source language
        SENTENCES["hi"],  # wrong
        "42",  # undetermined: no letters
        "!!",  # undetermined
        "ab",  # undetermined: 2 letters < 3
        "12:30 ab!",  # undetermined: digits and punctuation do not count
    ]
    stats = wlr_stats(outputs, "te", "en", lid)
    assert (stats.n, stats.determined, stats.undetermined, stats.wrong, stats.in_source) == (8, 4, 4, 2, 1)
    assert stats.wlr == 0.5 and stats.src_rate == 0.25


def test_nothing_determined_gives_nan_not_zero(lid):
    stats = wlr_stats(["1", "", "ok"], "de", "en", lid)
    assert stats.undetermined == 3 and math.isnan(stats.wlr) and math.isnan(stats.src_rate)


class _Fixed:
    """A backend with known probabilities, for the τ boundary."""

    name = "fixed"

    def __init__(self, prob):
        self.prob = prob

    def predict(self, texts):
        return [("de", self.prob) for _ in texts]


def test_tau_and_min_letters_boundaries():
    assert verdicts(["Hallo Welt"], "en", _Fixed(0.3), tau=0.3) == [("wrong", "de")]  # at τ: determined
    assert verdicts(["Hallo Welt"], "en", _Fixed(0.29), tau=0.3) == [("undetermined", "de")]
    assert verdicts(["abc"], "de", _Fixed(0.9), min_letters=3)[0][0] == "right"
    assert verdicts(["abc"], "de", _Fixed(0.9), min_letters=4)[0][0] == "undetermined"
    with pytest.raises(ValueError, match=r"1\.5"):
        verdicts(["x"], "de", _Fixed(0.9), tau=1.5)
    with pytest.raises(ValueError, match="-1"):
        verdicts(["x"], "de", _Fixed(0.9), min_letters=-1)


@pytest.mark.parametrize(
    "code, expected",
    [
        ("fil", "tl"),
        ("tgl", "tl"),
        ("zh-Hans", "zh"),
        ("zh_TW", "zh"),
        ("cmn", "zh"),
        ("deu", "de"),
        ("EN", "en"),
        ("pt-BR", "pt"),
        ("jw", "jv"),
        ("swh", "sw"),
        ("iw", "he"),
        ("xyz", "xyz"),
    ],
)
def test_normalize_lang(code, expected):
    assert normalize_lang(code) == expected


def test_reference_accuracy_flags_a_language_the_detector_cannot_see(lid):
    assert reference_accuracy([SENTENCES["de"]] * 3, "de", lid) == 1.0
    # Wolof is not among lid.176's labels: its text is never identified as "wo".
    assert reference_accuracy(["Dama bëgg lekk ceebu jën ak sama xarit yi."], "wo", lid) == 0.0


def test_cld2_backend_when_installed():
    pytest.importorskip("pycld2")
    cld2 = get_langid("cld2")
    assert verdicts([SENTENCES["de"]], "de", cld2)[0][0] == "right"
