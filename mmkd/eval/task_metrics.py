"""Task metrics of XTREME-R as generation: SQuAD-style F1/EM for QA, entity F1 for NER as text.

QA (XQuAD, MLQA, TyDiQA-GoldP): a generated answer is compared with the gold answers after MLQA's
language-aware normalisation (Lewis et al., 2020, ``mlqa_evaluation_v1.py``), applied to every language:
lower-case; drop punctuation, Unicode punctuation included; drop articles where MLQA defines them (en, es,
de, vi, ar; hi and zh have none); split on whitespace — except in languages written without spaces
(``CHARACTER_LANGS``), where each character of such a script is a token of its own, so that a partly right
Chinese or Thai answer gets partial credit instead of 0. EM and F1 take the best gold answer; corpus
scores are means in percent, like the official scripts. XTREME's own XQuAD and TyDiQA scores use the English
SQuAD script in every language, so they can differ from these by a point or two.

NER (WikiANN / PAN-X): the target lists a sentence's entities as text, ``PER: Ada Lovelace; LOC: London``
(``format_entities``). A generated list is parsed back (``parse_entities``) and scored with micro precision,
recall and F1 over (type, mention) pairs, as seqeval scores spans: a mention counts only when its type and
its whole text are right.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mmkd.registry import Registry

# Scripts written without spaces between words: CJK ideographs, kana and their punctuation and fullwidth
# forms (。，), Thai, Lao, Myanmar, Khmer.
_UNSPACED = re.compile(
    "[\u2e80-\u2fdf\u3001-\u303f\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uff01-\uffef\U00020000-\U0002fa1f\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff]"
)
CHARACTER_LANGS: frozenset[str] = frozenset({"zh", "ja", "th", "my", "lo", "km"})

_ARTICLES: dict[str, re.Pattern[str]] = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    # MLQA's pattern is "\sال^|ال", whose first branch can never match: it removes every "ال", inside
    # words too. Kept as is, so that scores stay comparable with the official script.
    "ar": re.compile("ال"),
}

ENTITY_SEP = "; "


def is_unspaced(char: str) -> bool:
    """Whether ``char`` belongs to a script written without spaces between words."""
    return _UNSPACED.match(char) is not None


def _is_punctuation(char: str) -> bool:
    # string.punctuation adds the ASCII symbols ($, +, <, ...) that Unicode files under S*, not P*.
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def _characters(text: str) -> list[str]:
    """Whitespace tokens, with every character of an unspaced script split off as a token of its own.
    A combining mark stays with the character before it (Thai and Myanmar vowels and tones are marks)."""
    tokens: list[str] = []
    word = ""
    for char in text:
        if unicodedata.category(char).startswith("M") and not word and tokens:
            tokens[-1] += char
        elif is_unspaced(char):
            tokens += word.split()
            word = ""
            tokens.append(char)
        else:
            word += char
    return tokens + word.split()


def normalize_answer(text: str, lang: str) -> str:
    """MLQA's normalisation of an answer in ``lang``, tokens joined by single spaces."""
    text = "".join(c for c in text.lower() if not _is_punctuation(c))
    articles = _ARTICLES.get(lang)
    if articles is not None:
        text = articles.sub(" ", text)
    tokens = _characters(text) if lang in CHARACTER_LANGS else text.split()
    return " ".join(tokens)


def _golds(reference: str | Sequence[str]) -> list[str]:
    golds = [reference] if isinstance(reference, str) else list(reference)
    if not golds:
        raise ValueError("an example has no gold answer")
    return golds


def exact_match(prediction: str, reference: str | Sequence[str], lang: str) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction, lang)
    return float(any(pred == normalize_answer(gold, lang) for gold in _golds(reference)))


def _f1(pred: list[str], gold: list[str]) -> float:
    # Like SQuAD v1.1 and MLQA: no common token (an empty side included) is 0.
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, reference: str | Sequence[str], lang: str) -> float:
    """Token-overlap F1 (0–1) of the prediction with its best gold answer."""
    pred = normalize_answer(prediction, lang).split()
    return max(_f1(pred, normalize_answer(gold, lang).split()) for gold in _golds(reference))


def _check(predictions: Sequence[object], references: Sequence[object]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("a score of an empty corpus is undefined")


def qa_scores(
    predictions: Sequence[str], references: Sequence[str | Sequence[str]], lang: str
) -> dict[str, float]:
    """``{"f1", "em"}`` in percent: the corpus means of ``token_f1`` and ``exact_match``; a reference is
    one gold answer or several."""
    _check(predictions, references)
    pairs = list(zip(predictions, references, strict=True))
    return {
        "f1": 100 * sum(token_f1(p, r, lang) for p, r in pairs) / len(pairs),
        "em": 100 * sum(exact_match(p, r, lang) for p, r in pairs) / len(pairs),
    }


def join_tokens(tokens: Iterable[str]) -> str:
    """Tokens joined by spaces, except between two characters of an unspaced script: WikiANN splits
    Chinese and Japanese into single characters, which read as the original text only when rejoined."""
    out = ""
    for token in tokens:
        if out and not (is_unspaced(out[-1]) and is_unspaced(token[0])):
            out += " "
        out += token
    return out


def format_entities(entities: Iterable[tuple[str, str]]) -> str:
    """``[("PER", "Ada Lovelace"), ("LOC", "London")]`` → ``PER: Ada Lovelace; LOC: London``."""
    return ENTITY_SEP.join(f"{etype}: {mention}" for etype, mention in entities)


def parse_entities(text: str) -> list[tuple[str, str]]:
    """The (type, mention) pairs of a generated entity list, in order. Items that are not ``TYPE: mention``
    are not entities and are dropped; types are upper-cased and mentions' whitespace normalised, so that
    spacing alone never makes a mention wrong."""
    entities = []
    for item in text.split(ENTITY_SEP.strip()):
        etype, sep, mention = item.partition(":")
        etype, mention = etype.strip().upper(), join_tokens(mention.split())
        if sep and etype and mention:
            entities.append((etype, mention))
    return entities


def entity_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Micro ``{"precision", "recall", "f1"}`` in percent over the corpus's (type, mention) pairs; a
    corpus without predicted (or gold) entities has precision (or recall) 0, as in seqeval."""
    _check(predictions, references)
    hits = n_pred = n_gold = 0
    for prediction, reference in zip(predictions, references, strict=True):
        pred, gold = Counter(parse_entities(prediction)), Counter(parse_entities(reference))
        hits += sum((pred & gold).values())
        n_pred += sum(pred.values())
        n_gold += sum(gold.values())
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1}


# ---------------------------------------------------------------------------------------------------
# What a task is scored with
# ---------------------------------------------------------------------------------------------------

Reference = str | Sequence[str]


def _qa_example(prediction: str, reference: Reference, lang: str) -> dict[str, float]:
    return {
        "f1": 100 * token_f1(prediction, reference, lang),
        "em": 100 * exact_match(prediction, reference, lang),
    }


def _qa_corpus(predictions: Sequence[str], references: Sequence[Reference], lang: str) -> dict[str, float]:
    return qa_scores(predictions, references, lang)


def _entity_example(prediction: str, reference: Reference, lang: str) -> dict[str, float]:
    """Sentence F1 plus the counts (``hits``, ``n_pred``, ``n_gold``) that sum to the corpus's micro F1,
    so a bootstrap over examples can recompute the corpus score exactly. A sentence with no entity on
    either side is right: F1 100."""
    pred, gold = Counter(parse_entities(prediction)), Counter(parse_entities(_one(reference)))
    hits, n_pred, n_gold = sum((pred & gold).values()), sum(pred.values()), sum(gold.values())
    f1 = 100.0 if n_pred == n_gold == 0 else 200 * hits / (n_pred + n_gold)
    return {"f1": f1, "hits": hits, "n_pred": n_pred, "n_gold": n_gold}


def _entity_corpus(
    predictions: Sequence[str], references: Sequence[Reference], lang: str
) -> dict[str, float]:
    return {"f1": entity_scores(predictions, [_one(r) for r in references])["f1"]}


def _exact_example(prediction: str, reference: Reference, lang: str) -> dict[str, float]:
    return {"exact": 100.0 * (prediction.strip() == _one(reference).strip())}


def _exact_corpus(predictions: Sequence[str], references: Sequence[Reference], lang: str) -> dict[str, float]:
    """Share of outputs equal to their reference (in percent). chrF rewards an output for the characters
    it shares with the answer, so copying the input scores high; only the right answer is exact."""
    _check(predictions, references)
    hits = [_exact_example(p, r, lang)["exact"] for p, r in zip(predictions, references, strict=True)]
    return {"exact": sum(hits) / len(hits) if hits else float("nan")}


def _one(reference: Reference) -> str:
    if isinstance(reference, str):
        return reference
    if len(reference) != 1:
        raise ValueError(f"an entity list has exactly one reference (got {len(reference)})")
    return reference[0]


@dataclass(frozen=True)
class TaskMetric:
    """How a task is scored besides chrF and WLR, which every task reports.

    ``keys``: the per-language metrics it adds (``eval/<lang>/<key>``, in percent, with group means);
    ``primary``: the per-language metric the sweep optimises (``eval/score`` is its zero-shot mean);
    ``corpus(predictions, references, lang)`` and ``example(prediction, reference, lang)`` compute the
    keys for one language and for one output (the per-example rows carry these, for the bootstrap).
    """

    name: str
    primary: str
    keys: tuple[str, ...] = ()
    corpus: Callable[[Sequence[str], Sequence[Reference], str], dict[str, float]] | None = None
    example: Callable[[str, Reference, str], dict[str, float]] | None = None


TASK_METRICS: Registry[TaskMetric] = Registry("task metric")
for _metric in (
    TaskMetric("chrf", primary="chrf", keys=("exact",), corpus=_exact_corpus, example=_exact_example),
    TaskMetric("qa", primary="f1", keys=("f1", "em"), corpus=_qa_corpus, example=_qa_example),
    TaskMetric("entities", primary="f1", keys=("f1",), corpus=_entity_corpus, example=_entity_example),
):
    TASK_METRICS.register(_metric.name)(_metric)


def get_task_metric(name: str) -> TaskMetric:
    return TASK_METRICS.get(name)


def primary_metric(task_name: str) -> str:
    """The metric ``eval/score`` averages for a registered task (its class's ``metric``), without
    building the task: ``f1`` for QA and NER, ``chrf`` otherwise."""
    from mmkd.data import TASKS

    return get_task_metric(getattr(TASKS.get(task_name), "metric", "chrf")).primary
