"""``builtin/cldr``: an offline, parallel, multilingual generation task built from Unicode CLDR (babel).

The task: turn a past relative time into the future one with the same count and unit — en
``3 days ago`` → ``in 3 days``, fr ``il y a 3 jours`` → ``dans 3 jours``, te ``3 రోజుల క్రితం`` →
``3 రోజుల్లో``, sw ``siku 3 zilizopita`` → ``baada ya siku 3``. The target's language-specific words
(``in``, ``dans``, ``రోజుల్లో``, ``baada ya``) are not in the input, so a model that learned the task in
English only must still *produce* the other language: the situation in which zero-shot cross-lingual
generation drifts into the source language.

- Records: (count, unit) with a count of 3–99 (Arabic and Hebrew spell 1 and 2 out as words, so
  the count would not be a shared word) and one of CLDR's seven units, year to second.
  One field per record, because two do not fit the byte budget: a past relative time is up to 58 UTF-8
  bytes in Tamil and Burmese, a future one up to 61 in Marathi (every kept language: sources ≤ 58
  bytes, targets ≤ 61, measured over every record; ``tests/data`` checks ≤ 64).
- Parallel: an id names one record, rendered in every language. ``Example.spans`` holds the count (the
  one word that every language writes, and whose alignment is therefore exact whatever the word order:
  ``il y a 3 jours``, ``3 days ago``, ``ပြီးခဲ့သည့် 3 ရက်``) and then the whole field.
- Splits: the 679 records are shuffled by the seed and cut into disjoint pools — 30% test, 10% dev,
  60% train — so dev and test ask for (count, unit) pairs that training never showed; a split larger
  than its pool cycles through it. ``train`` is labelled in English; in other languages it is the same
  records' parallel inputs.
- Corpus: per language, relative times in both directions (alone, and next to their mirror image in
  either order: ``3 రోజుల క్రితం | 3 రోజుల్లో``), durations, runs of day and month names, dates, and
  language and territory names, at most ``CORPUS_LINE_BYTES`` bytes a line. A model pretrained on it
  with span corruption has seen each language's forms — and that they come in pairs — before the
  English-only finetuning teaches the task's input/output format. Dev/test forms occur in the corpus
  (the space of forms is small): the corpus teaches the language, the finetuning the task.

Languages: English plus the 28 XTREME-R languages whose targets fastText lid.176 (the WLR detector)
identifies with probability ≥ 0.3 in ≥ 95% of all records and which have ≥ 3 letters (measured: 100%
for all but lt 97.6% and tr 99.7%). English targets (``in 3 days``) are identified as English with
probability 0.81–0.93, so an output that drifted into English is counted as English. The other direction was
measured too and rejected: lid.176 reads English ``3 days ago`` as Italian. ``UNSCORABLE`` says why each
other XTREME-R language is left out. The low-resource group is the kept languages of Joshi et al.'s
classes 0–2 (``mmkd.data.languages``): az gu jv ml mr my pa sw te.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from datetime import date, timedelta
from functools import cache, lru_cache
from typing import Literal, get_args

from babel import Locale
from babel.dates import TIMEDELTA_UNITS, format_date, format_timedelta, get_day_names, get_month_names
from babel.lists import format_list

from mmkd.data.base import SPLITS, TASKS, Example
from mmkd.data.languages import LOW_RESOURCE_NAME, XTREME_R_LANGUAGES, is_low_resource
from mmkd.errors import UserInputError
from mmkd.registry import did_you_mean

LANGUAGES: tuple[str, ...] = tuple(
    "en af ar az el et fi fr gu he hi hu it jv ka lt ml mr my pa pt ru sw ta te th tr ur vi".split()
)
LOW_RESOURCE: tuple[str, ...] = tuple(lang for lang in LANGUAGES if is_low_resource(lang))

# Measured with lid.176 over all 679 records (future forms, τ = 0.3); shown when a user asks for one.
UNSCORABLE: dict[str, str] = {
    "bg": "lid.176 identifies 28% of its targets (most as Russian)",
    "bn": "14% of its targets have fewer than 3 letters ('day': দিনে), which WLR cannot judge",
    "de": "lid.176 identifies 29% of its targets (most as English: 'in 3 Stunden')",
    "es": "lid.176 identifies 86% of its targets (weeks read as French)",
    "eu": "lid.176 identifies 56% of its targets (most as Spanish)",
    "fa": "lid.176 identifies 71% of its targets (most as Arabic)",
    "ht": "lid.176 identifies 0% of its targets (CLDR gives it French forms)",
    "id": "lid.176 identifies 43% of its targets (most as Malay)",
    "ja": "57% of its targets have fewer than 3 letters ('3 日後'), which WLR cannot judge",
    "kk": "lid.176 identifies 71% of its targets (most as Ukrainian)",
    "ko": "71% of its targets have fewer than 3 letters ('3일 후'), which WLR cannot judge",
    "ms": "lid.176 identifies 57% of its targets (most as Indonesian)",
    "nl": "lid.176 identifies 43% of its targets (most as English)",
    "pl": "lid.176 identifies 32% of its targets (most as Slovenian)",
    "qu": "lid.176 identifies 0% of its targets",
    "ro": "lid.176 identifies 29% of its targets (most as French)",
    "tl": "lid.176 identifies 29% of its targets (most as Cebuano)",
    "uk": "lid.176 identifies 55% of its targets (most as Russian)",
    "wo": "lid.176 has no Wolof",
    "yo": "CLDR has no relative-time words for it (babel writes '+3 d')",
    "zh": "43% of its targets have fewer than 3 letters ('3天后'), which WLR cannot judge",
}

Unit = Literal["year", "month", "week", "day", "hour", "minute", "second"]
UNITS: tuple[Unit, ...] = get_args(Unit)
SECONDS_PER_UNIT = dict(TIMEDELTA_UNITS)  # babel's own table, so a count renders in exactly its unit
COUNTS = range(3, 100)
Record = tuple[int, Unit]
RECORDS: tuple[Record, ...] = tuple((count, unit) for unit in UNITS for count in COUNTS)
POOL_SHARE = {"test": 0.3, "dev": 0.1}  # train gets the rest
CORPUS_LINE_BYTES = 95  # the tiny zoo's pretraining context (96 bytes with EOS) sees whole lines
CORPUS_JOIN = " | "
_DIGITS = re.compile(r"\d+")


@cache
def _locale(lang: str) -> Locale:
    # Passing a parsed Locale makes babel's formatters ~3x faster than passing the code.
    return Locale.parse(lang)


def _format(count: int, unit: Unit, lang: str, sign: int, add_direction: bool) -> str:
    # granularity=unit with an infinite threshold stops babel from switching to a larger unit (by
    # default 40 days render as "in 1 month").
    return format_timedelta(
        timedelta(seconds=sign * count * SECONDS_PER_UNIT[unit]),
        granularity=unit,
        threshold=math.inf,
        add_direction=add_direction,
        locale=_locale(lang),
    )


@cache
def relative(count: int, unit: Unit, lang: str, future: bool) -> str:
    """CLDR's relative time in ``unit``: ``in 3 days`` (future) or ``3 days ago``."""
    return _format(count, unit, lang, 1 if future else -1, add_direction=True)


def duration(count: int, unit: Unit, lang: str) -> str:
    """CLDR's duration in ``unit``, without a direction: ``3 days``."""
    return _format(count, unit, lang, 1, add_direction=False)


def _check_positive(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserInputError(f"task.{key}: must be an integer >= 1 (got {value!r})")


def _check_language(lang: object) -> str:
    if not isinstance(lang, str):
        raise UserInputError(f"task.languages: each entry must be a language code (got {lang!r})")
    if lang in LANGUAGES:
        return lang
    if lang in UNSCORABLE:
        why = f"cannot be scored: {UNSCORABLE[lang]}"
    else:
        why = f"is not an XTREME-R language{did_you_mean(lang, XTREME_R_LANGUAGES)}"
    raise UserInputError(f"task.languages: {lang!r} {why}; available: {' '.join(LANGUAGES[1:])}")


class CLDRTask:
    name = "builtin/cldr"
    source_lang = "en"
    metric = "chrf"  # mmkd.eval.task_metrics: scored by chrF (and WLR) alone

    def __init__(
        self,
        *,
        n_train: int = 2000,
        n_dev: int = 48,
        n_test: int = 200,
        seed: int = 0,
        languages: Sequence[str] | None = None,
        corpus_lines: int = 2000,
    ) -> None:
        for key, value in (
            ("n_train", n_train),
            ("n_dev", n_dev),
            ("n_test", n_test),
            ("corpus_lines", corpus_lines),
        ):
            _check_positive(key, value)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserInputError(f"task.seed: must be an integer (got {seed!r})")
        if languages is not None and (isinstance(languages, str) or not isinstance(languages, Sequence)):
            raise UserInputError(f"task.languages: must be a list of language codes (got {languages!r})")
        chosen = set(LANGUAGES if languages is None else map(_check_language, languages))
        if languages is not None and not chosen - {self.source_lang}:
            raise UserInputError(
                f"task.languages: must name at least one language besides {self.source_lang!r} "
                f"(got {list(languages)!r})"
            )
        self.languages = tuple(lang for lang in LANGUAGES if lang in chosen or lang == self.source_lang)
        self.low_resource = tuple(lang for lang in LOW_RESOURCE if lang in self.languages)
        self.low_resource_name = LOW_RESOURCE_NAME
        self.seed, self.corpus_lines = seed, corpus_lines
        self._sizes = {"train": n_train, "dev": n_dev, "test": n_test}

    def examples(self, split: str, lang: str) -> list[Example]:
        if split not in SPLITS:
            raise UserInputError(
                f"split: unknown {split!r}{did_you_mean(split, SPLITS)}; splits: {', '.join(SPLITS)}"
            )
        self._check_lang(lang)
        return list(_examples(self.seed, split, self._sizes[split], lang))

    def corpus(self, lang: str) -> list[str]:
        self._check_lang(lang)
        return list(_corpus(self.seed, lang, self.corpus_lines))

    def parallel_corpus(self) -> None:
        """None: every training record is translated into every language (``examples``)."""
        return None

    def _check_lang(self, lang: str) -> None:
        if lang not in self.languages:
            why = f" ({UNSCORABLE[lang]})" if lang in UNSCORABLE else did_you_mean(lang, self.languages)
            raise UserInputError(
                f"language {lang!r} is not in task {self.name}{why}; languages: {' '.join(self.languages)}"
            )


TASKS.register("builtin/cldr")(CLDRTask)


@lru_cache(maxsize=8)
def _pools(seed: int) -> dict[str, tuple[Record, ...]]:
    # A string seed hashes with sha512, independent of PYTHONHASHSEED.
    records = list(RECORDS)
    random.Random(f"{seed}:records").shuffle(records)
    n_test, n_dev = (round(share * len(records)) for share in POOL_SHARE.values())
    return {
        "test": tuple(records[:n_test]),
        "dev": tuple(records[n_test : n_test + n_dev]),
        "train": tuple(records[n_test + n_dev :]),
    }


@lru_cache(maxsize=256)
def _examples(seed: int, split: str, n: int, lang: str) -> tuple[Example, ...]:
    pool = _pools(seed)[split]
    out = []
    for i in range(n):
        count, unit = pool[i % len(pool)]
        source = relative(count, unit, lang, future=False)
        (number,) = (m for m in _DIGITS.finditer(source) if m.group() == str(count))
        spans = ((number.start(), number.end()), (0, len(source)))
        out.append(Example(f"{split}-{i:05d}", lang, source, relative(count, unit, lang, True), spans))
    return tuple(out)


def _names(lang: str, rng: random.Random) -> str:
    locale = _locale(lang)
    kind = rng.random()
    if kind < 0.3:  # three days or months in calendar order, joined the locale's way ("a, b and c")
        names = list(get_day_names("wide", locale=locale).values())
        start = rng.randrange(7)
        return format_list([names[(start + i) % 7] for i in range(3)], locale=locale)
    if kind < 0.6:
        names = list(get_month_names("wide", locale=locale).values())
        start = rng.randrange(12)
        return format_list([names[(start + i) % 12] for i in range(3)], locale=locale)
    if kind < 0.8:
        day = date(2000, 1, 1) + timedelta(days=rng.randrange(11000))
        return format_date(day, format=rng.choice(("full", "long")), locale=locale)
    table = locale.languages if rng.random() < 0.5 else locale.territories
    return format_list(rng.sample(sorted(table.values()), 2), locale=locale)


def _corpus_line(lang: str, rng: random.Random) -> str:
    count, unit = rng.choice(RECORDS)
    kind = rng.random()
    if kind < 0.35:  # a form next to its mirror: the pairing the task relies on, in-language
        future_first = rng.random() < 0.5
        first, second = (relative(count, unit, lang, d) for d in (future_first, not future_first))
        return first + CORPUS_JOIN + second
    if kind < 0.6:
        return relative(count, unit, lang, rng.random() < 0.5)
    if kind < 0.7:  # the unit word without a direction
        return duration(count, unit, lang)
    return _names(lang, rng)


@lru_cache(maxsize=64)
def _corpus(seed: int, lang: str, n: int) -> tuple[str, ...]:
    rng = random.Random(f"{seed}:corpus:{lang}")
    lines: list[str] = []
    while len(lines) < n:
        line = _corpus_line(lang, rng)
        if len(line.encode()) <= CORPUS_LINE_BYTES:
            lines.append(line)
    return tuple(lines)
