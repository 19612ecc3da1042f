"""Trivial baselines every sweep is shown next to: what a student must beat for its numbers to mean
anything.

- ``copy_input``: the output is the input, unchanged. On the built-in task it scores high chrF (the
  count and most of the unit's letters are shared with the answer) with the right language.
- ``english_answer``: the output is the source-language (English) reference of the same item, where the
  task's items are parallel: what a model that answers perfectly but drifts into English reaches.
- ``teacher:<size>``: each teacher's own evaluation on the same dev sets, right after its finetuning
  (``mmkd.distill.teacher``): what distillation can hope to transfer.

``<storage>/<name>/mmkd/baselines.csv`` has the column ``baseline`` first, then the metric columns of the
results table (``eval/<lang>/chrf``, ``eval/zero_shot/wlr``, ``eval/score``, …), one row per baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from mmkd.data.base import Example, Task
from mmkd.eval.langid import LangID

BASELINES_FILE = "baselines.csv"


def dev_sets(task: Task) -> dict[str, list[Example]]:
    """The dev examples of every language of ``task``: what trials and baselines are evaluated on."""
    return {lang: task.examples("dev", lang) for lang in task.languages}


def trivial_outputs(task: Task, dev: Mapping[str, Sequence[Example]]) -> dict[str, dict[str, list[str]]]:
    """Outputs of the input-copying and English-answer baselines per language (the latter only when
    every item has an English version)."""
    out = {"copy_input": {lang: [e.source for e in examples] for lang, examples in dev.items()}}
    english = {e.id: e.target for e in dev.get(task.source_lang, [])}
    if all(e.id in english for examples in dev.values() for e in examples):
        out["english_answer"] = {lang: [english[e.id] for e in examples] for lang, examples in dev.items()}
    return out


def baseline_table(
    task: Task,
    dev: Mapping[str, Sequence[Example]],
    langid: LangID,
    tau: float,
    teachers: Mapping[str, Mapping[str, float]],
) -> pd.DataFrame:
    """One row per baseline: the trivial ones scored here, then ``teacher:<size>`` from ``teachers``
    (size → the teacher's evaluation metrics)."""
    from mmkd.eval.evaluate import score_outputs  # not at import: `mmkd curves` only reads the table

    rows = [
        {"baseline": name, **score_outputs(outputs, task, dev, langid, tau).metrics}
        for name, outputs in trivial_outputs(task, dev).items()
    ]
    rows += [{"baseline": f"teacher:{size}", **metrics} for size, metrics in sorted(teachers.items())]
    # The languages' roles, as trials report them, so the curves group a baseline like a trial.
    groups = {"source_lang": task.source_lang, "low_resource_langs": ",".join(task.low_resource)}
    return pd.DataFrame([{**row, **groups} for row in rows])


def write_baselines(table: pd.DataFrame, mmkd_dir: Path) -> Path:
    path = mmkd_dir / BASELINES_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6g")
    tmp.replace(path)
    return path


def read_baselines(mmkd_dir: Path) -> pd.DataFrame | None:
    path = mmkd_dir / BASELINES_FILE
    return pd.read_csv(path) if path.is_file() else None
