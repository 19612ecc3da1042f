"""``xtreme_r/*``: XTREME-R tasks (Ruder et al., 2021) as text generation, from the hub or local files.

- ``xtreme_r/xquad``, ``xtreme_r/mlqa``, ``xtreme_r/tydiqa``: ``question: … context: …`` → the answer text.
  Trained on SQuAD v1.1 (XQuAD, MLQA) or TyDiQA-GoldP's English part; evaluated on XQuAD (cut into dev and
  test), MLQA dev and test, TyDiQA-GoldP dev (cut into dev and test).
- ``xtreme_r/panx``: WikiANN (PAN-X) NER, a sentence → its entities, ``PER: Ada Lovelace; LOC: London``.
  Trained on the English train split; evaluated on each language's dev and test splits.
- ``xtreme_r/tatoeba``: Tatoeba's English–X sentence pairs, a sentence → the same sentence; the pairs are
  cut into train, dev and test. Its point is the parallel data (below).

That is XTREME-R's zero-shot protocol: train in English, evaluate in every other language. Scores: the
functions of ``mmkd.eval.task_metrics`` (SQuAD F1/EM with MLQA's language-aware normalisation for QA,
entity F1 for NER), besides the chrF and wrong-language rate every trial reports; each task class names
its scoring (``metric``), whose primary metric — F1 for QA and NER, chrF for Tatoeba — is the sweep's
objective. A QA target is the first gold answer; where a question has several, ``Example.golds`` holds
them all and F1/EM take the best, as the official scripts do.

Sources (``datasets.load_dataset``): ``google/xtreme`` configs ``SQuAD``, ``XQuAD.<lang>``,
``MLQA.<lang>.<lang>``, ``tydiqa`` and ``tatoeba.<iso 639-3>``; WikiANN from ``unimelb-nlp/wikiann``
(config ``<lang>``), Rahimi et al.'s balanced splits, which are XTREME's PAN-X and also cover the eight
XTREME-R languages that ``google/xtreme``'s PAN-X lacks (az gu lt pa pl qu ro uk: 48 in all).
Nothing loads until a task's ``examples`` or ``corpus`` is first called: building a task (as
``mmkd sweep validate`` does) never touches the hub or the disk.

Local copies (the ``data_dir`` option), for machines without the hub: ``<data_dir>/<config>/<split>.jsonl``
(JSON lines in the hub's schema) or ``<data_dir>/<config>/``, a ``save_to_disk`` folder of the config's
``DatasetDict`` (or of one split, as ``<data_dir>/<config>/<split>/``). ``<config>`` and ``<split>`` are
the hub's names, e.g. ``tydiqa/validation.jsonl``, ``XQuAD.de/validation.jsonl``, ``sw/test.jsonl``
(WikiANN), ``tatoeba.swh/validation.jsonl``. Made, where the hub is reachable, with::

    datasets.load_dataset("google/xtreme", "tydiqa").save_to_disk("DIR/tydiqa")

Splits. Where the source has one evaluation split (XQuAD, TyDiQA-GoldP dev, Tatoeba), each example goes to
dev (``DEV_SHARE``) or test by a hash of its id, which does not depend on the seed: the test set is the
same in every sweep, and a parallel example (an XQuAD question in every language, both sides of a
Tatoeba pair) lands in the same split in every language. Tatoeba has no training data:
``TATOEBA_TRAIN_SHARE`` of its pairs train.
Within a split, the seed orders the examples and ``n_train``/``n_dev``/``n_test`` keep the first ones (all
there are when fewer).

Parallel data. ``examples("train", lang)`` outside English is the translation of English training
examples, with the same ids (only those the English training split kept). Tatoeba has it (each language's
pairs translate their own English sides, so a language covers only the English examples of its pairs).
The QA tasks and WikiANN have no human translation of their training data: there it is empty, unless
the ``parallel_source`` option names one (``task.parallel_source`` in a sweep):

- ``translate_train``: the task's translate-train data. XQuAD and MLQA train on SQuAD v1.1, whose
  machine translation into ar de es hi vi zh is on the hub as ``facebook/mlqa``
  ``mlqa-translate-train.<lang>`` (split ``train``, SQuAD's schema and question ids): a translated
  question is matched to its English one by id. XTREME's TyDiQA-GoldP and XQuAD-only (el ru th tr)
  translations are not on the hub, so those tasks and languages refuse it.
- ``flores`` or ``tatoeba``: a parallel corpus (``mmkd.data.parallel``, ``parallel_corpus()``): the
  encoder-side levels then read its sentence pairs instead of the task's examples.

Every zero-shot language of the task must be in the source (else a one-line error naming those it has).

The low-resource group (``low_resource_group``): a task's languages of Joshi et al.'s (2020) classes 0–2
(``mmkd.data.languages``, as for the built-in task), or, for a task with none, its languages of the
lowest class it has — XQuAD: el th (class 3); MLQA: hi vi (class 4); TyDiQA: sw te; WikiANN: az gu jv ml
mr my pa qu sw te yo; Tatoeba: jv ml mr sw te. The group is fixed per task; choosing ``languages``
only narrows it. Its metrics are named for what it holds (``low_resource_name``): ``eval/low_resource/*``
for classes 0–2, else ``eval/lowest_class3/*`` (XQuAD), ``eval/lowest_class4/*`` (MLQA).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mmkd.data.base import SPLITS, TASKS, Example
from mmkd.data.languages import LOW_RESOURCE_NAME, RESOURCE_CLASS, XTREME_R_LANGUAGES, is_low_resource
from mmkd.errors import UserInputError
from mmkd.eval.task_metrics import format_entities, join_tokens
from mmkd.registry import did_you_mean

if TYPE_CHECKING:
    from mmkd.data.parallel import ParallelCorpus

XTREME = "google/xtreme"
MLQA = "facebook/mlqa"
CORPORA = ("flores", "tatoeba")  # parallel corpora, mmkd.data.parallel
PARALLEL_SOURCES = ("translate_train", *CORPORA)
WIKIANN = "unimelb-nlp/wikiann"
DEV_SHARE = 0.2
TATOEBA_TRAIN_SHARE = 0.5
WIKIANN_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")  # its ClassLabel order
QUESTION, CONTEXT = "question: ", " context: "

Row = dict[str, Any]


@dataclass(frozen=True)
class HubSplit:
    """One split of one config of a hub dataset: what is loaded, from the hub or from ``data_dir``."""

    repo: str
    config: str
    split: str


def low_resource_group(languages: Iterable[str]) -> tuple[str, ...]:
    """The languages of Joshi classes 0–2 among ``languages`` (English excluded), or, when there are none,
    those of the lowest class among them."""
    zero_shot = [lang for lang in languages if lang != "en"]
    low = [lang for lang in zero_shot if is_low_resource(lang)]
    if low or not zero_shot:
        return tuple(low)
    lowest = min(RESOURCE_CLASS[lang] for lang in zero_shot)
    return tuple(lang for lang in zero_shot if RESOURCE_CLASS[lang] == lowest)


def low_resource_group_name(languages: Iterable[str]) -> str:
    """What ``low_resource_group(languages)`` holds, as a metric group name: ``low_resource`` for Joshi
    classes 0-2, else ``lowest_class<k>`` — XQuAD's el th are class 3, not low-resource."""
    group = low_resource_group(languages)
    if not group or is_low_resource(group[0]):
        return LOW_RESOURCE_NAME
    return f"lowest_class{RESOURCE_CLASS[group[0]]}"


# ---------------------------------------------------------------------------------------------------
# Loading rows
# ---------------------------------------------------------------------------------------------------


def load_rows(source: HubSplit, data_dir: str | None, task: str) -> list[Row]:
    """The rows of ``source``, from ``data_dir`` when given, else from the hub (or its local cache).
    Anything missing is a one-line ``UserInputError`` saying what and how to provide it."""
    if data_dir is None:
        return _hub_rows(source, task)
    return _local_rows(Path(data_dir).expanduser(), source, task)


def _hub_rows(source: HubSplit, task: str) -> list[Row]:
    import datasets

    try:
        dataset = datasets.load_dataset(source.repo, source.config, split=source.split)
    except Exception as e:  # offline, unreachable, not cached, gated: datasets raises a dozen kinds
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        offline = " (offline mode: HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)" if _offline() else ""
        raise UserInputError(
            f"{task}: cannot load {source.repo} '{source.config}' split {source.split} from the Hugging "
            f"Face hub{offline}: {first}; load it once where the hub is reachable (it is then cached), or "
            f"set the task option data_dir=DIR to a local copy: DIR/{source.config}/{source.split}.jsonl "
            f"or a save_to_disk folder DIR/{source.config}"
        ) from None
    return _dataset_rows(dataset)


def _offline() -> bool:
    return any(
        os.environ.get(var, "").upper() in {"1", "ON", "YES", "TRUE"}
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _local_rows(root: Path, source: HubSplit, task: str) -> list[Row]:
    folder = root / source.config
    jsonl = folder / f"{source.split}.jsonl"
    if jsonl.is_file():
        return _read_jsonl(jsonl)
    import datasets

    if (folder / "dataset_dict.json").is_file():
        splits = datasets.load_from_disk(str(folder))
        if source.split not in splits:
            raise UserInputError(
                f"{task}: {folder} has no split {source.split!r} (it has: {', '.join(splits)})"
            )
        return _dataset_rows(splits[source.split])
    if (folder / source.split / "dataset_info.json").is_file():
        return _dataset_rows(datasets.load_from_disk(str(folder / source.split)))
    raise UserInputError(
        f"{task}: data_dir {root} has no {source.repo} '{source.config}' split {source.split}: expected "
        f"{jsonl} (JSON lines in the hub's schema) or a save_to_disk folder {folder}"
    )


def _read_jsonl(path: Path) -> list[Row]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserInputError(f"{path}:{number}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise UserInputError(f"{path}:{number}: expected a JSON object (got {type(row).__name__})")
            rows.append(row)
    return rows


def _dataset_rows(dataset: Any) -> list[Row]:
    """Rows as dicts, with class-label sequences (WikiANN's ``ner_tags``) decoded to their names."""
    rows: list[Row] = dataset.to_list()
    for column, feature in dataset.features.items():
        names = getattr(getattr(feature, "feature", None), "names", None)
        if names is not None:
            for row in rows:
                row[column] = [names[i] for i in row[column]]
    return rows


def _field(row: Row, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``row[key]``, checked: a file in the wrong schema is named, not a ``KeyError`` deep inside."""
    value = row.get(key)
    if not isinstance(value, kind):
        shown = "missing" if key not in row else f"got {value!r:.60}"
        raise UserInputError(f"{where}: field {key!r} is not in the expected schema ({shown})")
    return value


# ---------------------------------------------------------------------------------------------------
# Rows -> examples
# ---------------------------------------------------------------------------------------------------


def _qa_example(row: Row, lang: str, where: str) -> Example | None:
    """``question: Q context: C`` → the first gold answer; the question and the context are the aligned
    fields (``spans``). None for a question without an answer, which has no target."""
    question = _field(row, "question", str, where).strip()
    context = _field(row, "context", str, where).strip()
    answers = _field(_field(row, "answers", dict, where), "text", list, where)
    if not answers:
        return None
    source = f"{QUESTION}{question}{CONTEXT}{context}"
    spans = ((len(QUESTION), len(QUESTION) + len(question)), (len(source) - len(context), len(source)))
    golds = tuple(dict.fromkeys(str(a).strip() for a in answers))
    example_id = str(_field(row, "id", (str, int), where))
    return Example(example_id, lang, source, golds[0], spans, golds if len(golds) > 1 else ())


def bio_entities(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
    """(type, mention) of each entity in BIO tags, in order; an ``I-X`` that does not continue an ``X``
    starts one, as in seqeval's default mode."""
    if len(tokens) != len(tags):
        raise UserInputError(f"{len(tokens)} tokens but {len(tags)} tags")
    entities: list[tuple[str, list[str]]] = []
    current = None
    for token, tag in zip(tokens, tags, strict=True):
        prefix, _, etype = tag.partition("-")
        if tag == "O":
            current = None
        elif prefix in {"B", "I"} and etype:
            if prefix == "B" or etype != current:
                entities.append((etype, []))
                current = etype
            entities[-1][1].append(token)
        else:
            raise UserInputError(f"tag {tag!r} is not O, B-TYPE or I-TYPE")
    return [(etype, join_tokens(words)) for etype, words in entities]


def _tag_name(tag: object) -> str:
    """A tag as a name: JSON lines may hold WikiANN's class ids instead of its tag names."""
    if isinstance(tag, str):
        return tag
    if isinstance(tag, int) and not isinstance(tag, bool) and 0 <= tag < len(WIKIANN_TAGS):
        return WIKIANN_TAGS[tag]
    raise UserInputError(
        f"tag {tag!r} is neither a tag name nor one of WikiANN's {len(WIKIANN_TAGS)} class ids"
    )


def _ner_example(row: Row, lang: str, example_id: str, where: str) -> Example:
    """Sentence → its entities as text (empty when it has none)."""
    tokens = [str(t) for t in _field(row, "tokens", list, where)]
    try:
        tags = [_tag_name(t) for t in _field(row, "ner_tags", list, where)]
        target = format_entities(bio_entities(tokens, tags))
    except UserInputError as e:
        raise UserInputError(f"{where}: {e}") from None
    source = join_tokens(tokens)
    return Example(example_id, lang, source, target, ((0, len(source)),))


def _unit(key: str) -> float:
    """A uniform number in [0, 1) from ``key``, the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


# ---------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------


def _check_count(key: str, value: object, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        none = " or null" if optional else ""
        raise UserInputError(f"task.{key}: must be an integer >= 1{none} (got {value!r})")


class XtremeRTask:
    """What the five tasks share: options, language checks, selection, lazy loading and caching.

    A subclass names its languages and builds every example of a split (``_pool``); this class orders
    them by the seed and keeps the first ``n_<split>``.
    """

    name: str
    LANGUAGES: ClassVar[tuple[str, ...]]  # source first
    TRANSLATE_TRAIN: ClassVar[tuple[str, ...]] = ()  # languages of its translate-train data on the hub
    TRANSLATES_ITSELF: ClassVar[bool] = False  # its training data is parallel already (Tatoeba)
    source_lang = "en"
    metric = "chrf"  # mmkd.eval.task_metrics: how outputs are scored; its primary metric is eval/score

    def __init__(
        self,
        *,
        n_train: int = 2000,
        n_dev: int = 48,
        n_test: int | None = None,
        seed: int = 0,
        languages: Sequence[str] | None = None,
        data_dir: str | None = None,
        parallel_source: str | None = None,
    ) -> None:
        _check_count("n_train", n_train)
        _check_count("n_dev", n_dev)
        _check_count("n_test", n_test, optional=True)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserInputError(f"task.seed: must be an integer (got {seed!r})")
        if data_dir is not None and (not isinstance(data_dir, str) or not data_dir):
            raise UserInputError(f"task.data_dir: must be a folder path (got {data_dir!r})")
        if languages is not None and (isinstance(languages, str) or not isinstance(languages, Sequence)):
            raise UserInputError(f"task.languages: must be a list of language codes (got {languages!r})")
        chosen = set(self.LANGUAGES if languages is None else map(self._check_language, languages))
        if not chosen - {self.source_lang}:
            raise UserInputError(
                f"task.languages: must name at least one language besides {self.source_lang!r} "
                f"(got {list(languages or [])!r})"
            )
        self.languages = tuple(lang for lang in self.LANGUAGES if lang in chosen or lang == self.source_lang)
        self.low_resource = tuple(
            lang for lang in low_resource_group(self.LANGUAGES) if lang in self.languages
        )
        self.low_resource_name = low_resource_group_name(self.LANGUAGES)
        self.seed = seed
        self.data_dir = data_dir
        self.parallel_source = self._check_parallel_source(parallel_source)
        self._sizes = {"train": n_train, "dev": n_dev, "test": n_test}
        self._rows: dict[HubSplit, list[Row]] = {}
        self._examples: dict[tuple[str, str], tuple[Example, ...]] = {}
        self._corpus: ParallelCorpus | None = None

    def examples(self, split: str, lang: str) -> list[Example]:
        if split not in SPLITS:
            raise UserInputError(
                f"split: unknown {split!r}{did_you_mean(split, SPLITS)}; splits: {', '.join(SPLITS)}"
            )
        self._check_lang(lang)
        key = (split, lang)
        if key not in self._examples:
            self._examples[key] = tuple(self._select(split, lang))
        return list(self._examples[key])

    def corpus(self, lang: str) -> list[str]:
        """The distinct texts (contexts, sentences) of the dev pool: unlabelled, and never test data."""
        self._check_lang(lang)
        return list(dict.fromkeys(e.source[slice(*e.spans[-1])] for e in self._pool("dev", lang)))

    def parallel_corpus(self) -> ParallelCorpus | None:
        """The parallel corpus ``parallel_source`` names (English and the task's zero-shot languages), or
        None when the source is the task's own data; loaded on first call."""
        if self.parallel_source not in CORPORA:
            return None
        if self._corpus is None:
            from mmkd.data.parallel import load_corpus

            targets = [lang for lang in self.languages if lang != self.source_lang]
            self._corpus = load_corpus(self.parallel_source, targets, self._load, self.name)
        return self._corpus

    # --- for subclasses ---

    def _pool(self, split: str, lang: str) -> list[Example]:
        """Every example of ``split`` in ``lang``, in any order."""
        raise NotImplementedError

    def _select(self, split: str, lang: str) -> list[Example]:
        pool = sorted(self._pool(split, lang), key=lambda e: _unit(f"{self.seed}:{e.id}"))
        if split == "train" and lang != self.source_lang and pool:
            # A translation is only useful next to its English example: keep those the English train kept.
            english = {e.id for e in self.examples("train", self.source_lang)}
            kept = [e for e in pool if e.id in english]
            if not kept and self.parallel_source == "translate_train":
                raise UserInputError(
                    f"{self.name}: no {lang} translate-train question has the id of an English training "
                    f"question (e.g. {pool[0].id!r}), so none can be paired by id"
                )
            return kept
        size = self._sizes[split]
        return pool if size is None else pool[:size]

    def _check_parallel_source(self, source: object) -> str | None:
        """``source`` if this task can use it with its languages, else a one-line ``UserInputError``."""
        if source is None:
            return None
        if source not in PARALLEL_SOURCES:
            raise UserInputError(
                f"task.parallel_source: unknown {source!r}{did_you_mean(str(source), PARALLEL_SOURCES)}; "
                f"sources: {', '.join(PARALLEL_SOURCES)}"
            )
        if self.TRANSLATES_ITSELF:
            raise UserInputError(f"task.parallel_source: {self.name} is parallel data itself: leave it unset")
        from mmkd.data.parallel import corpus_languages

        covered = self.TRANSLATE_TRAIN if source == "translate_train" else corpus_languages(source)
        if not covered:
            raise UserInputError(
                f"task.parallel_source: {self.name} has no translate-train data on the hub; "
                f"use a parallel corpus: {', '.join(CORPORA)}"
            )
        missing = [lang for lang in self.languages if lang != self.source_lang and lang not in covered]
        if missing:
            raise UserInputError(
                f"task.parallel_source: {source} has no English-{'/'.join(missing)} pairs for {self.name} "
                f"(it has: {' '.join(covered)}); narrow task.languages or choose another source"
            )
        return source

    def _load(self, source: HubSplit) -> list[Row]:
        if source not in self._rows:
            self._rows[source] = load_rows(source, self.data_dir, self.name)
        return self._rows[source]

    def _where(self, source: HubSplit) -> str:
        return f"{self.name}: {source.repo} '{source.config}' split {source.split}"

    def _dev_or_test(self, example_id: str) -> str:
        """dev or test, for sources with one evaluation split (a hash of the id, seed-independent)."""
        return "dev" if _unit(f"{self.name}:pool:{example_id}") < DEV_SHARE else "test"

    def _check_language(self, lang: object) -> str:
        if not isinstance(lang, str):
            raise UserInputError(f"task.languages: each entry must be a language code (got {lang!r})")
        if lang in self.LANGUAGES:
            return lang
        if lang in XTREME_R_LANGUAGES:
            why = f"is an XTREME-R language {self.name} has no data for"
        else:
            why = f"is not an XTREME-R language{did_you_mean(lang, XTREME_R_LANGUAGES)}"
        raise UserInputError(f"task.languages: {lang!r} {why}; available: {' '.join(self.LANGUAGES[1:])}")

    def _check_lang(self, lang: str) -> None:
        if lang not in self.languages:
            raise UserInputError(
                f"language {lang!r} is not in task {self.name}{did_you_mean(lang, self.languages)}; "
                f"languages: {' '.join(self.languages)}"
            )


class _QATask(XtremeRTask):
    metric = "qa"

    def _qa(self, source: HubSplit, lang: str) -> list[Example]:
        where = self._where(source)
        examples = (_qa_example(row, lang, f"{where} row {i}") for i, row in enumerate(self._load(source)))
        return [e for e in examples if e is not None]

    def _squad_train(self, lang: str) -> list[Example]:
        """SQuAD v1.1 train in English, or its translate-train version (MLQA's) when that is the source."""
        if lang == self.source_lang:
            return self._qa(SQUAD_TRAIN, lang)
        if self.parallel_source != "translate_train":
            return []
        return self._qa(HubSplit(MLQA, f"mlqa-translate-train.{lang}", "train"), lang)


SQUAD_TRAIN = HubSplit(XTREME, "SQuAD", "train")
MLQA_TRANSLATE_TRAIN = ("ar", "de", "es", "hi", "vi", "zh")  # SQuAD v1.1 train, machine-translated


class XQuADTask(_QATask):
    """XQuAD: SQuAD v1.1 dev questions translated into ten languages, trained on SQuAD v1.1 train."""

    name = "xtreme_r/xquad"
    LANGUAGES = tuple("en ar de el es hi ru th tr vi zh".split())
    TRANSLATE_TRAIN = MLQA_TRANSLATE_TRAIN

    def _pool(self, split: str, lang: str) -> list[Example]:
        if split == "train":
            return self._squad_train(lang)
        examples = self._qa(HubSplit(XTREME, f"XQuAD.{lang}", "validation"), lang)
        return [e for e in examples if self._dev_or_test(e.id) == split]


class MLQATask(_QATask):
    """MLQA with context and question in the same language (the setting XTREME-R reports), trained on
    SQuAD v1.1 train."""

    name = "xtreme_r/mlqa"
    LANGUAGES = tuple("en ar de es hi vi zh".split())
    TRANSLATE_TRAIN = MLQA_TRANSLATE_TRAIN

    def _pool(self, split: str, lang: str) -> list[Example]:
        if split == "train":
            return self._squad_train(lang)
        hub_split = "validation" if split == "dev" else "test"
        return self._qa(HubSplit(XTREME, f"MLQA.{lang}.{lang}", hub_split), lang)


TYDIQA_PREFIXES = {
    "english": "en", "arabic": "ar", "bengali": "bn", "finnish": "fi", "indonesian": "id",
    "korean": "ko", "russian": "ru", "swahili": "sw", "telugu": "te",
}  # fmt: skip


class TyDiQATask(_QATask):
    """TyDiQA-GoldP: one hub config for every language, told apart by the id's prefix
    (``swahili-1234-0``). Training is its English part, as in XTREME-R."""

    name = "xtreme_r/tydiqa"
    LANGUAGES = tuple(TYDIQA_PREFIXES.values())

    def _pool(self, split: str, lang: str) -> list[Example]:
        if split == "train":
            return (
                self._in_lang(HubSplit(XTREME, "tydiqa", "train"), lang) if lang == self.source_lang else []
            )
        examples = self._in_lang(HubSplit(XTREME, "tydiqa", "validation"), lang)
        return [e for e in examples if self._dev_or_test(e.id) == split]

    def _in_lang(self, source: HubSplit, lang: str) -> list[Example]:
        return [e for e in self._qa(source, lang) if TYDIQA_PREFIXES.get(e.id.split("-")[0]) == lang]


class PANXTask(XtremeRTask):
    """WikiANN NER as generation, trained in English only (the other languages' training sentences are
    not translations of the English ones, so they are not offered as parallel data)."""

    name = "xtreme_r/panx"
    metric = "entities"
    LANGUAGES = tuple(
        "en af ar az bg bn de el es et eu fa fi fr gu he hi hu id it ja jv ka kk ko lt ml mr ms my nl pa "
        "pl pt qu ro ru sw ta te th tl tr uk ur vi yo zh".split()
    )
    HUB_SPLITS: ClassVar[dict[str, str]] = {"train": "train", "dev": "validation", "test": "test"}

    def _pool(self, split: str, lang: str) -> list[Example]:
        if split == "train" and lang != self.source_lang:
            return []
        source = HubSplit(WIKIANN, lang, self.HUB_SPLITS[split])
        where = self._where(source)
        return [
            _ner_example(row, lang, f"{lang}-{source.split}-{i:06d}", f"{where} row {i}")
            for i, row in enumerate(self._load(source))
        ]


TATOEBA_CODES = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa", "et": "est",
    "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar",
    "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "tl": "tgl", "th": "tha",
    "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn",
}  # fmt: skip


class TatoebaTask(XtremeRTask):
    """Tatoeba's English–X sentence pairs (up to 1000 a language) as parallel data for MMKD's parallel
    losses. The task is to reproduce the input — a target in the input's language, so that an output
    that drifted into English is counted as wrong by WLR. The English examples of a split are the English
    sides of the chosen languages' pairs; an id (``tatoeba-sw-0042``) names one pair in both languages."""

    name = "xtreme_r/tatoeba"
    LANGUAGES = ("en", *TATOEBA_CODES)
    TRANSLATES_ITSELF = True

    def _pool(self, split: str, lang: str) -> list[Example]:
        langs = [lang] if lang != self.source_lang else [x for x in self.languages if x != self.source_lang]
        return [
            e for other in langs for e in self._pairs(other, english=lang == self.source_lang, split=split)
        ]

    def _pairs(self, lang: str, english: bool, split: str) -> list[Example]:
        source = HubSplit(XTREME, f"tatoeba.{TATOEBA_CODES[lang]}", "validation")
        where = self._where(source)
        out = []
        for i, row in enumerate(self._load(source)):
            example_id = f"tatoeba-{lang}-{i:04d}"
            if self._tatoeba_split(example_id) != split:
                continue
            key = "target_sentence" if english else "source_sentence"
            text = _field(row, key, str, f"{where} row {i}").strip()
            out.append(Example(example_id, "en" if english else lang, text, text, ((0, len(text)),)))
        return out

    def _tatoeba_split(self, example_id: str) -> str:
        u = _unit(f"{self.name}:pool:{example_id}")
        if u < TATOEBA_TRAIN_SHARE:
            return "train"
        return "dev" if u < TATOEBA_TRAIN_SHARE + DEV_SHARE else "test"


for _task in (XQuADTask, MLQATask, TyDiQATask, PANXTask, TatoebaTask):
    TASKS.register(_task.name)(_task)
