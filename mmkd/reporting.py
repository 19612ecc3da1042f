"""What a trial reports at each evaluation: built here for the real trial (mmkd.trial) and the scale
simulation (mmkd.sweep.simulate) alike, so the two cannot drift apart.

A report is the step, the training losses (``train/loss``, ``train/loss_<term>``), the trial's metadata
(``metadata``), the evaluation's per-language metrics with their group means (``group_means``) and the
objective ``eval/score``, and timings. Tune keeps statistics of every number of every report in its
experiment state and rewrites that state at every snapshot (~115 KB a trial for a report of ~135
numbers, BENCHMARKS.md). Only what Tune's side reads goes to Tune (``for_tune``: the step, the loss,
the chrF and WLR group means, the objective, the keys the searcher, stopper or scheduler read);
``set_aside`` writes the rest — per-language metrics, the task metric's other means, the loss terms,
the trial's metadata, timings — to ``mmkd_examples/<step>.metrics.json`` in the trial's working
directory, next to the evaluation's per-example rows, which reach the trial's storage folder the same
way (at each checkpoint and when the trial ends).
``mmkd.curves.aggregate`` joins them back into the results table (``read_set_aside``), so the table,
the curves, the heatmaps, the confirm stage and ``mmkd sweep status`` see every number as before.

No torch, no Ray: simulated trial actors and the results table import this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmkd import names
from mmkd.atomic import write_text

if TYPE_CHECKING:
    from mmkd.config import SearchConfig, StopConfig, TrialConfig
    from mmkd.data.base import Task

#: ``<trial dir>/mmkd_examples/``: each evaluation's per-example rows (``<step>.jsonl``, mmkd.trial) and
#: its per-language metrics (``<step>.metrics.json``).
EXAMPLES_DIR = "mmkd_examples"


@dataclass(frozen=True)
class Languages:
    """What an evaluation covers: the source language, every evaluated language (source first), the
    low-resource ones and their group's name in metric keys, and the task metric (its name in
    ``mmkd.eval.task_metrics``)."""

    source: str
    langs: tuple[str, ...]
    low_resource: tuple[str, ...]
    low_name: str = names.LOW_RESOURCE
    metric: str = names.CHRF

    @classmethod
    def of_task(cls, task: Task) -> Languages:
        return cls(
            task.source_lang,
            tuple(task.languages),
            tuple(task.low_resource),
            task.low_resource_name,
            task.metric,
        )


def group_means(
    metrics: Mapping[str, float],
    langs: Sequence[str],
    *,
    source_lang: str,
    low_resource: Sequence[str],
    low_name: str,
    task_keys: Sequence[str],
    primary: str,
) -> dict[str, float]:
    """The group means of the per-language ``metrics`` of ``langs`` and the objective ``eval/score``.

    ``zero_shot``: every language but the source; ``low_name``: the low-resource languages among them;
    chrF, WLR and the task metric's keys each. ``source``: the source language's chrF and task keys.
    A mean skips NaN (a language with no determined output has no WLR) and is NaN when nothing is left.
    """
    zero_shot = [lang for lang in langs if lang != source_lang]
    low_set = set(low_resource)
    low = [lang for lang in zero_shot if lang in low_set]
    means: dict[str, float] = {}
    for group, members in ((names.ZERO_SHOT, zero_shot), (low_name, low)):
        for metric in (names.CHRF, names.WLR, *task_keys):
            means[names.key(group, metric)] = _mean([metrics[names.key(lang, metric)] for lang in members])
    for metric in (names.CHRF, *task_keys):
        means[names.key(names.SOURCE, metric)] = metrics.get(names.key(source_lang, metric), math.nan)
    means[names.SCORE] = means[names.key(names.ZERO_SHOT, primary)]
    return means


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def metadata(trial: TrialConfig, languages: Languages) -> dict[str, Any]:
    """What every report of a trial carries about the trial: its pair, searched values and settings.

    What only a real trial knows (its trainable parameter count, LAPT, where it resumed from) the trial
    adds itself."""
    return {
        "teacher": trial.teacher,
        "student": trial.student,
        "teacher_params": trial.teacher_params,
        "student_params": trial.student_params,
        "ratio": trial.ratio,
        "ratio_total": trial.ratio_total,
        "method": trial.method,
        "stage": trial.stage,
        "lr": trial.lr,
        "adapter_rank": trial.adapter_rank,
        "seed": trial.train.seed,
        "aux_translation": trial.aux_translation,  # searched or fixed
        "max_steps": trial.train.max_steps,
        "source_lang": languages.source,
        "low_resource_langs": ",".join(languages.low_resource),
        "low_resource_group": languages.low_name,
    }


def build(
    step: int,
    losses: Mapping[str, float],
    static: Mapping[str, Any],
    metrics: Mapping[str, float],
    unreliable_langs: Sequence[str],
    **extra: Any,
) -> dict[str, Any]:
    """One report: ``losses`` by term (``loss`` is the total), the trial's ``static`` keys, the
    evaluation's ``metrics``, the languages whose LID is unreliable, and ``extra`` (timings)."""
    return {
        names.STEP: step,
        **{names.loss_key(term): value for term, value in losses.items()},
        **static,
        **metrics,
        "unreliable_langs": ",".join(unreliable_langs),
        **extra,
    }


def tune_keys(search: SearchConfig, stop: StopConfig) -> frozenset[str]:
    """The metrics Tune's side reads from a report: the searcher's objectives, ASHA's metric and the WLR
    stopper's, which may be a single language's (``eval/sw/wlr``)."""
    keys = {search.metric, *search.directions()}
    if stop.wlr is not None:
        keys.add(stop.wlr.metric)
    return frozenset(keys)


def for_tune(report_key: str, keep: frozenset[str]) -> bool:
    """Whether a report's key goes to Tune: the step and ``max_steps`` (ASHA, the stopper, the study's
    ``stopped_by``), the training loss and the group means of chrF and WLR (the live curves,
    mmkd.sweep.logs), the objective, and the keys in ``keep``. The trial's identity is in Tune's trial
    config already; the loss terms, like the per-language metrics, are in the results table."""
    if report_key in keep or report_key in (names.STEP, "max_steps", names.TRAIN_LOSS):
        return True
    parts = report_key.split("/")
    if parts[0] not in (names.EVAL, names.TEST):
        return False
    return len(parts) == 2 or (names.is_group(parts[1]) and parts[2] in (names.CHRF, names.WLR))


def set_aside(report: Mapping[str, Any], directory: Path, keep: frozenset[str]) -> dict[str, Any]:
    """The report for Tune (``for_tune``); the rest — per-language metrics, the task metric's group
    means, the trial's metadata, timings — goes to ``<directory>/<step>.metrics.json``, replaced whole
    (a step evaluated again replaces its numbers), with a copy of what Tune is sent (``read_sent``: a
    resumed trial re-sends it when Tune lost it, mmkd.catchup). ``keep``: other keys Tune needs
    (``tune_keys``)."""
    apart = {k: v for k, v in report.items() if not for_tune(k, keep)}
    sent = {k: v for k, v in report.items() if k not in apart}
    directory.mkdir(parents=True, exist_ok=True)
    step = int(report[names.STEP])
    write_text(directory / metrics_file(step), json.dumps({names.STEP: step, "metrics": apart, "sent": sent}))
    return sent


def metrics_file(step: int) -> str:
    return f"{step:06d}.metrics.json"


def read_set_aside(trial_dir: Path, step: int) -> dict[str, Any]:
    """What ``set_aside`` wrote for ``step`` in a trial's folder; {} when there is nothing (not yet
    copied to the storage, a damaged file, or a sweep from before reports were split)."""
    return _read_record(trial_dir, step, "metrics") or {}


def read_sent(trial_dir: Path, step: int) -> dict[str, Any] | None:
    """What the trial sent Tune for ``step`` (``set_aside``'s copy); None when it is not on record."""
    return _read_record(trial_dir, step, "sent")


def _read_record(trial_dir: Path, step: int, part: str) -> dict[str, Any] | None:
    try:
        stored = json.loads((trial_dir / EXAMPLES_DIR / metrics_file(step)).read_text(encoding="utf-8"))
        if stored[names.STEP] == step and isinstance(stored[part], dict):
            return dict(stored[part])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None
