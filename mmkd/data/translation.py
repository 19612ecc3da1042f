"""Translation pairs between the parallel training records of a task.

A pair asks for one record's text in language B given the same text in language A, the same field on
both sides (a past form to a past form, a future form to a future form: never the task's own mapping).
Pairs come only from the ``train`` split, so no dev or test record is ever shown translated. They are
used twice: the tiny family pretrains on them (mmkd.models.zoo), which makes it a translation-trained
stand-in for NLLB-200 and mBART-50, and a trial may keep a share of them in its finetuning batches
(``train.aux_translation``) so English-only task finetuning does not overwrite what the language tags
mean. The pair's example has language B; ``mmkd.models.langcodes.tagged`` puts B's tag before its input.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mmkd.data.base import Example, Task
from mmkd.errors import UserInputError

FIELDS = ("source", "target")


class TranslationPairs:
    """Draws translation pairs among ``languages`` from the records every one of them translates, as a
    model of ``family`` reads them (tagged with the output language where the family is told it so)."""

    def __init__(self, task: Task, languages: Sequence[str], family: str | None = None) -> None:
        self.family = family
        by_lang = {lang: {e.id: e for e in task.examples("train", lang)} for lang in languages}
        ids = sorted(set.intersection(*(set(records) for records in by_lang.values())))
        self.languages = tuple(languages)
        self.records = [{lang: by_lang[lang][i] for lang in self.languages} for i in ids]
        if len(self.languages) < 2 or not self.records:
            raise UserInputError(
                f"task {task.name}: no training record is translated into two of "
                f"{' '.join(self.languages)}, so there are no translation pairs to train on"
            )

    def sample(self, rng: random.Random, n: int) -> list[Example]:
        """``n`` pairs drawn with ``rng``: a record, two different languages and a field, uniformly."""
        out = []
        for _ in range(n):
            record = self.records[rng.randrange(len(self.records))]
            a, b = rng.sample(self.languages, 2)
            field = rng.choice(FIELDS) if record[a].target and record[b].target else "source"
            src, tgt = record[a], record[b]
            out.append(Example(f"{src.id}:{a}>{b}", b, getattr(src, field), getattr(tgt, field)))
        if self.family is None:
            return out
        from mmkd.models.langcodes import tagged

        return tagged(self.family, out)

    def for_step(self, seed: int, step: int, n: int) -> list[Example]:
        """The pairs of training step ``step``: a pure function of (seed, step), like the task's batches,
        so a resumed trial sees the pairs it would have seen."""
        return self.sample(random.Random(f"{seed}:{step}:translation"), n)
