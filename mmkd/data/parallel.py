"""Parallel corpora for MMKD's encoder-side levels, for tasks that translate none of their training examples.

Parallel-input mode (``distill.parallel``) shows the teacher's encoder an English input and the student's
encoder its translation. A task whose training examples have translations supplies them itself
(``Task.examples("train", lang)``, matched by id: the built-in task, Tatoeba, or the QA tasks with
``task.parallel_source: translate_train``). Otherwise ``task.parallel_source`` names a parallel corpus and
the encoder-side levels are computed on its sentence pairs instead of the task's examples — the teacher
reads the English sentence, the student its translation into a zero-shot language drawn per pair — while
the task and token losses stay on the English task batch:

- ``flores``: FLORES-200 (NLLB Team, 2022), ``facebook/flores``, one config per language named by its
  FLORES-200 code (``eng_Latn``, ``swh_Latn``, ``tel_Telu``: the NLLB table of
  ``mmkd.models.langcodes``), the ``dev`` split only (997 sentences; ``devtest`` is left to evaluations).
  Sentences are aligned across languages by the ``id`` column.
- ``tatoeba``: ``google/xtreme`` ``tatoeba.<iso 639-3>`` (``validation``, up to 1000 pairs a language,
  ``source_sentence`` in the language, ``target_sentence`` its English). Each language's pairs have their
  own English sentences: a pair is its own id.

Both load like the tasks' data: from the hub, or from ``task.data_dir`` in the hub's schema
(``DIR/swh_Latn/dev.jsonl``, ``DIR/tatoeba.swh/validation.jsonl``). An English example of a corpus has
an empty target (the teacher's decoder side is never used for it) and one aligned field, the sentence, so
the word level pools whole sentences.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mmkd.data.base import Example
from mmkd.data.xtreme_r import CORPORA, TATOEBA_CODES, XTREME, HubSplit, Row, _field
from mmkd.errors import UserInputError

FLORES = "facebook/flores"
FLORES_SPLIT = "dev"

Loader = Callable[[HubSplit], list[Row]]


@dataclass(frozen=True)
class ParallelCorpus:
    """English sentences and, for each, its translations by language (at least one)."""

    name: str
    english: tuple[Example, ...]
    translations: tuple[dict[str, Example], ...]

    def __post_init__(self) -> None:
        if not self.english:
            raise UserInputError(f"parallel corpus {self.name}: no English sentence has a translation")

    def for_step(self, seed: int, step: int, n: int) -> tuple[list[int], list[Example], list[Example]]:
        """The pairs of training step ``step``: their row numbers, English sides and translations (each
        in a language drawn among those translating it) — a pure function of (seed, step), like the task's
        batches, so a resumed trial sees the pairs it would have seen."""
        rng = random.Random(f"{seed}:{step}:parallel-corpus")
        rows = [rng.randrange(len(self.english)) for _ in range(n)]
        views = [self.translations[r][rng.choice(sorted(self.translations[r]))] for r in rows]
        return rows, [self.english[r] for r in rows], views


def corpus_languages(name: str) -> tuple[str, ...]:
    """The ISO 639-1 languages corpus ``name`` pairs with English."""
    if name == "flores":
        from mmkd.models.langcodes import NLLB_CODES

        return tuple(sorted(lang for lang in NLLB_CODES if lang != "en"))
    return tuple(sorted(TATOEBA_CODES))


def load_corpus(name: str, languages: Sequence[str], load: Loader, where: str) -> ParallelCorpus:
    """Corpus ``name`` between English and ``languages``, its rows read with ``load`` (hub or local copy)."""
    if name == "flores":
        return _flores(languages, load, where)
    if name == "tatoeba":
        return _tatoeba(languages, load, where)
    raise UserInputError(f"task.parallel_source: unknown corpus {name!r}; corpora: {', '.join(CORPORA)}")


def _sentence(text: str, lang: str, example_id: str) -> Example:
    text = text.strip()
    return Example(example_id, lang, text, "" if lang == "en" else text, ((0, len(text)),))


def _flores_sentences(lang: str, load: Loader, where: str) -> dict[str, Example]:
    from mmkd.models.langcodes import NLLB_CODES

    source = HubSplit(FLORES, NLLB_CODES[lang], FLORES_SPLIT)
    out = {}
    for i, row in enumerate(load(source)):
        at = f"{where}: {FLORES} '{source.config}' split {source.split} row {i}"
        example_id = f"flores-{_field(row, 'id', (int, str), at)}"
        out[example_id] = _sentence(_field(row, "sentence", str, at), lang, example_id)
    return out


def _flores(languages: Sequence[str], load: Loader, where: str) -> ParallelCorpus:
    english = _flores_sentences("en", load, where)
    by_lang = {lang: _flores_sentences(lang, load, where) for lang in languages}
    ids = [i for i in english if any(i in sentences for sentences in by_lang.values())]
    return ParallelCorpus(
        "flores",
        tuple(english[i] for i in ids),
        tuple({lang: s[i] for lang, s in by_lang.items() if i in s} for i in ids),
    )


def _tatoeba(languages: Sequence[str], load: Loader, where: str) -> ParallelCorpus:
    english, translations = [], []
    for lang in languages:
        source = HubSplit(XTREME, f"tatoeba.{TATOEBA_CODES[lang]}", "validation")
        for i, row in enumerate(load(source)):
            at = f"{where}: {XTREME} '{source.config}' split {source.split} row {i}"
            example_id = f"tatoeba-{lang}-{i:04d}"
            english.append(_sentence(_field(row, "target_sentence", str, at), "en", example_id))
            translations.append({lang: _sentence(_field(row, "source_sentence", str, at), lang, example_id)})
    return ParallelCorpus("tatoeba", tuple(english), tuple(translations))
