"""What a task is: parallel examples per split and language, plus an unlabelled corpus per language."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mmkd.registry import Registry

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


class Task(Protocol):
    name: str
    source_lang: str
    languages: tuple[str, ...]  # every language with dev/test data, source first
    low_resource: tuple[str, ...]

    def examples(self, split: str, lang: str) -> list[Example]:
        """``train`` in the source language is the labelled training data; ``train`` in another language
        is the parallel translation of the same records, used only as unlabelled parallel inputs."""
        ...

    def corpus(self, lang: str) -> list[str]:
        """Unlabelled pretraining text in ``lang``."""
        ...


TASKS: Registry[Callable[..., Task]] = Registry("task")


def get_task(name: str, **options: Any) -> Task:
    return TASKS.get(name)(**options)


def format_examples(task: Task, split: str, lang: str, n: int) -> str:
    examples = task.examples(split, lang)[:n]
    lines = [f"{task.name} · {split} · {lang} · {len(task.examples(split, lang))} examples"]
    for e in examples:
        lines += [f"[{e.id}]", f"  source: {e.source}", f"  target: {e.target}"]
    return "\n".join(lines)
