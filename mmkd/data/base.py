"""What a task is: parallel examples per split and language, plus an unlabelled corpus per language."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from mmkd.errors import UserInputError
from mmkd.registry import Registry, did_you_mean

if TYPE_CHECKING:
    from mmkd.data.parallel import ParallelCorpus

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Example:
    id: str  # shared by the parallel versions of one example across languages, e.g. "dev-00012"
    lang: str  # ISO 639-1
    source: str  # model input
    target: str  # reference output
    # Character spans in `source` of the aligned fields: the same count and order in every language for
    # the same id, which gives the word-level alignment of MMKD by construction.
    spans: tuple[tuple[int, int], ...] = ()
    # Every acceptable reference when there are several (a QA question's gold answers, ``target`` first);
    # empty when ``target`` is the only one. The task metric takes the best of them.
    golds: tuple[str, ...] = ()

    @property
    def references(self) -> tuple[str, ...]:
        """What an output is scored against: ``golds``, or ``target`` alone."""
        return self.golds or (self.target,)

    def with_prefix(self, prefix: str) -> Example:
        """The same example with ``prefix`` before its source (its spans moved along)."""
        if not prefix:
            return self
        n = len(prefix)
        spans = tuple((start + n, end + n) for start, end in self.spans)
        return replace(self, source=prefix + self.source, spans=spans)


class Task(Protocol):
    name: str
    source_lang: str
    languages: tuple[str, ...]  # every language with dev/test data, source first
    low_resource: tuple[str, ...]
    # What the group of ``low_resource`` is called in metric names (``eval/<name>/...``): ``low_resource``
    # when it holds Joshi classes 0-2, else what it holds, e.g. ``lowest_class3`` (XQuAD's el th).
    low_resource_name: str
    # How outputs are scored besides chrF and WLR: a name in ``mmkd.eval.task_metrics.TASK_METRICS``
    # ("chrf": nothing more; "qa": SQuAD F1/EM; "entities": entity F1). Its primary metric is the sweep's
    # objective (``eval/score``): F1 for QA and NER, chrF otherwise.
    metric: str

    def examples(self, split: str, lang: str) -> list[Example]:
        """``train`` in the source language is the labelled training data; ``train`` in another language
        is the parallel translation of the same records, used only as unlabelled parallel inputs."""
        ...

    def corpus(self, lang: str) -> list[str]:
        """Unlabelled pretraining text in ``lang``."""
        ...

    def parallel_corpus(self) -> ParallelCorpus | None:
        """English–target sentence pairs for the encoder-side levels in parallel-input mode, when the task's
        own training examples have no translations and ``task.parallel_source`` names a corpus; else
        None (``mmkd.data.parallel``)."""
        ...


TASKS: Registry[Callable[..., Task]] = Registry("task")


def get_task(name: str, **options: Any) -> Task:
    """The registered task ``name`` built with ``options``; an unknown name or option is a
    ``UserInputError`` naming it (with a "did you mean"), not a ``TypeError`` from deep inside."""
    factory = TASKS.get(name)
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):  # a factory taking **options checks them itself
        return factory(**options)
    known = [p.name for p in params]
    for key in options:
        if key not in known:
            raise UserInputError(
                f"task.{key}: not an option of {name}{did_you_mean(key, known)}; options: {', '.join(known)}"
            )
    return factory(**options)


def format_examples(task: Task, split: str, lang: str, n: int) -> str:
    """The first ``n`` examples of a split in one language, as ``mmkd data show`` prints them."""
    if n < 0:
        raise UserInputError(f"-n: must be >= 0 (got {n})")
    examples = task.examples(split, lang)
    lines = [f"{task.name} · {split} · {lang} · {len(examples)} examples"]
    for e in examples[:n]:
        lines += [f"[{e.id}]", f"  source: {e.source}", f"  target: {e.target}"]
    return "\n".join(lines)
